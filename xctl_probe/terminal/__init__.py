"""For a person at a terminal: the stream as a table's rows (``--format
table``, the default when stdout is a terminal) and ``top``, a full-screen
view of the flows, processes and jobs that retransmit and drop the most.

Both read the lines the stream makes, as xctl's JSONL does (output/sink.py);
neither changes what a pipe gets. Text is fitted to the terminal's cells
(cells.py), columns to its width (columns.py), and colour comes from rich
(styles.py), none when NO_COLOR is set or stdout is no terminal.
"""
