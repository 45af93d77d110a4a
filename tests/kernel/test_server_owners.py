"""Owners on the accepting side: a server answering short requests under a
stream of new connections (8 clients asking again and again for 10 s, each
answer 256 KiB, the server closing each connection itself; one data packet in
ten lost each way). The server's lines must name it while it holds the
socket and after its close() alike, as the clients' name them."""

from lab.accounting import check_segs
from lab.answering import BEFORE_CLOSE, CLIENT, SERVER, run_answering
from lab.marks import requires_root
from lab.scenarios import by_owner

pytestmark = requires_root


def test_a_server_answering_short_requests_is_named_before_and_after_close():
    run = run_answering(port=9470)
    assert run.rc == 0 and run.answers
    events = run.events()
    sides = {"server": ([e for e in events if e["sport"] == run.port],
                        (run.server_pid, SERVER.decode())),
             "client": ([e for e in events if e["sport"] != run.port],
                        (run.client_pid, CLIENT.decode()))}
    shares = {}
    for side, (lines, owner) in sides.items():
        for phase, held in (("before close", True), ("after close", False)):
            selected = [e for e in lines if (e["state"] in BEFORE_CLOSE) == held]
            shares[side, phase] = share = by_owner(selected, lambda e, owner=owner: owner)
            print(f"{side} {phase}: of {len(share.events)} lines {len(share.right)} name it, "
                  f"{len(share.wrong)} a wrong pid, {len(share.unnamed)} none "
                  f"(unnamed by state and kind: "
                  f"{sorted({(e['state'], e.get('kind')) for e in share.unnamed})})")
    print(f"{run.answers} answers; sum(segs) {sum(e['segs'] for e in events)}, TcpRetransSegs "
          f"{run.delta['TcpRetransSegs']}, {run.skipped} retransmissions on top of PID-1 threads")
    # The server retransmits while it holds the socket and after close(); a
    # client while it sends its request (its FIN, after its close, is no data
    # and is not lost).
    assert all(shares[key].events for key in (("server", "before close"),
                                             ("server", "after close"),
                                             ("client", "before close")))
    # Every pid named is the socket's owner; and, separately, at least 99 % of
    # each side's lines in each phase name one.
    assert [(side, phase, e["pid"], e.get("comm"), e["state"])
            for (side, phase), share in shares.items() for e in share.wrong] == []
    assert [key for key, share in shares.items() if not share.mostly_named()] == []
    check_segs(sum(e["segs"] for e in events), run.delta, run.err_layout, run.skipped)
