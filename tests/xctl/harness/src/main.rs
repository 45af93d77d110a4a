//! xctl's own code, judging the probe.
//!
//! Starts the probe exactly as `ark run --probe PATH` does, through xctl's
//! unmodified SubprocessProbe (`python3 PATH`, stdout and stderr piped, a
//! restart one second after any exit), feeds every event it parses into
//! xctl's StateGraph through a bounded channel of 1000 as the agent's event
//! bus does, and on SIGTERM or SIGINT evaluates xctl's RuleEngine with the
//! rules of RULES_DIR over all of them.
//!
//! SubprocessProbe reports a line it cannot parse, and a failed read, only
//! as a message on the agent's stderr; this harness counts those messages
//! (its stderr passes through a pipe it reads) and forwards them.
//!
//! The last line on stdout is one JSON object: parsed, rejected,
//! read_errors, failed_exits, rules_loaded, matched (rule ids), waits_on
//! (edges pid-N -> resource) and events_by_type. Exits without stopping the
//! probe, as xctl does: the probe must end by itself once its stdout closes.
//!
//! Usage: xctl-harness PROBE_PATH RULES_DIR

#[allow(dead_code, unused_imports)]
#[path = "../../../../../shared/xctl-src/agent/src/plugin/mod.rs"]
mod plugin;

use ark_core::graph::EdgeType;
use ark_core::rules::RuleEngine;
use ark_core::{EventBus, StateGraph};
use plugin::{EventSource, SubprocessProbe};
use serde_json::json;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::io::FromRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Messages SubprocessProbe prints (agent/src/plugin/mod.rs) and what they mean.
const REJECTED: &str = "[SubprocessProbe] 解析 JSON 失败";
const READ_ERROR: &str = "[SubprocessProbe] 读取 stdout 失败";
const FAILED_EXIT: &str = "[SubprocessProbe] 子进程异常退出";
const FLUSHED: &str = "xctl-harness: stderr flushed";

/// How long the channel must stay empty after a stop request before the
/// rules are evaluated: lines already written are still being parsed.
const QUIET: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Tally {
    rejected: AtomicU64,
    read_errors: AtomicU64,
    failed_exits: AtomicU64,
}

/// Puts a pipe under this process's stderr and counts SubprocessProbe's
/// messages in what comes through, forwarding everything to the real stderr.
/// The receiver gets a unit once the FLUSHED marker has come through.
fn tally_stderr() -> (Arc<Tally>, mpsc::Receiver<()>) {
    let tally = Arc::new(Tally::default());
    let (flushed_tx, flushed_rx) = mpsc::channel();
    let mut fds = [0; 2];
    // SAFETY: plain descriptor calls on descriptors this function owns.
    let original = unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0, "pipe2");
        let original = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3);
        assert!(original >= 0, "dup stderr");
        assert_eq!(libc::dup2(fds[1], 2), 2, "dup2 stderr");
        libc::close(fds[1]);
        original
    };
    let counts = Arc::clone(&tally);
    std::thread::spawn(move || {
        // SAFETY: both descriptors were made above and are owned by this thread only.
        let reader = BufReader::new(unsafe { File::from_raw_fd(fds[0]) });
        let mut out = unsafe { File::from_raw_fd(original) };
        for line in reader.split(b'\n').map_while(Result::ok) {
            let text = String::from_utf8_lossy(&line);
            if text == FLUSHED {
                let _ = flushed_tx.send(());
                continue;
            }
            for (message, counter) in [
                (REJECTED, &counts.rejected),
                (READ_ERROR, &counts.read_errors),
                (FAILED_EXIT, &counts.failed_exits),
            ] {
                if text.starts_with(message) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = writeln!(out, "{text}");
        }
    });
    (tally, flushed_rx)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: xctl-harness PROBE_PATH RULES_DIR");
        std::process::exit(2);
    }
    let (probe_path, rules_dir) = (args[1].clone(), &args[2]);
    let (tally, flushed) = tally_stderr();

    let engine = match RuleEngine::load_from_dir(rules_dir) {
        Ok(engine) if engine.rule_count() > 0 => engine,
        Ok(_) => {
            eprintln!("xctl-harness: no rules in {rules_dir}");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("xctl-harness: cannot load rules from {rules_dir}: {e}");
            std::process::exit(2);
        }
    };
    let mut stop_term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut stop_int = signal(SignalKind::interrupt()).expect("SIGINT handler");

    // As the agent's run_daemon wires it: one bounded bus, the probe feeding it.
    let mut bus = EventBus::new(1000);
    let tx = bus.sender();
    let mut rx = bus.receiver().expect("a fresh bus has its receiver");
    tokio::spawn(async move {
        let probe = SubprocessProbe::new("python3".to_string(), vec![probe_path]);
        if let Err(e) = probe.start_stream(tx).await {
            eprintln!("xctl-harness: the probe stream ended: {e}");
        }
    });

    let graph = StateGraph::new();
    let mut events = Vec::new();
    let mut stopping = false;
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(event) => {
                    if let Err(e) = graph.process_event(&event).await {
                        eprintln!("xctl-harness: the graph refused an event: {e}");
                    }
                    events.push(event);
                }
                None => break,
            },
            _ = stop_term.recv(), if !stopping => stopping = true,
            _ = stop_int.recv(), if !stopping => stopping = true,
            _ = tokio::time::sleep(QUIET), if stopping => break,
        }
    }

    let matched: Vec<String> = engine
        .match_rules(&graph, &events)
        .await
        .into_iter()
        .map(|rule| rule.id.clone().unwrap_or_else(|| rule.scene.clone()))
        .collect();
    let waits_on: Vec<_> = graph
        .get_all_edges_async()
        .await
        .into_iter()
        .filter(|edge| edge.edge_type == EdgeType::WaitsOn)
        .map(|edge| json!([edge.from, edge.to]))
        .collect();
    let mut by_type = BTreeMap::new();
    for event in &events {
        *by_type.entry(event.event_type.to_string()).or_insert(0u64) += 1;
    }

    eprintln!("{FLUSHED}");
    let _ = flushed.recv_timeout(Duration::from_secs(5));
    let report = json!({
        "parsed": events.len(),
        "rejected": tally.rejected.load(Ordering::Relaxed),
        "read_errors": tally.read_errors.load(Ordering::Relaxed),
        "failed_exits": tally.failed_exits.load(Ordering::Relaxed),
        "rules_loaded": engine.rule_count(),
        "matched": matched,
        "waits_on": waits_on,
        "events_by_type": by_type,
    });
    println!("{report}");
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}
