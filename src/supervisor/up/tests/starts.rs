//! Starts: dependency gating, restart policies and backoff, failed
//! starts, OOM kills, health checks.

use super::*;

#[test]
fn a_new_stack_starts_every_container_once() {
    let mut h = H::new(TWO);
    h.up();
    assert_eq!(h.state("a"), State::Running);
    assert_eq!(h.state("b"), State::Running);
    assert_eq!((h.starts("a"), h.starts("b")), (1, 1));
}

#[test]
fn a_dependency_starts_first() {
    let mut h = H::new("[containers.b]\ndepends_on = [\"a\"]\n[containers.a]\n");
    h.up();
    let order: Vec<String> = h
        .fake
        .borrow()
        .starts
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(order, ["a", "b"]);
}

#[test]
fn a_container_waits_until_its_dependency_is_healthy() {
    let mut h = H::new(
        "[containers.a]\nhealth = { command = [\"/bin/true\"], interval = \"1s\" }\n\
         [containers.b]\ndepends_on = { a = \"healthy\" }\n",
    );
    h.up();
    assert_eq!(h.state("b"), State::Waiting);
    assert_eq!(h.starts("b"), 0);
    h.sup.on_check("a", Exit::Code(0));
    assert_eq!(h.state("b"), State::Running);
    assert_eq!(h.starts("b"), 1);
}

#[test]
fn a_container_waits_until_its_dependency_completed() {
    let mut h = H::new(
        "[containers.a]\nrestart = \"no\"\n[containers.b]\ndepends_on = { a = \"completed\" }\n",
    );
    h.up();
    assert_eq!(h.state("b"), State::Waiting);
    h.exits("a", 0);
    assert_eq!(h.state("a"), State::Exited(Exit::Code(0)));
    assert_eq!(h.state("b"), State::Running);
}

#[test]
fn many_dependents_released_at_once_start_without_recursing() {
    // Each start used to look for newly ready containers by recursing into
    // the next start: enough dependents overflowed the stack (a thousand
    // the main thread's). On a small stack, 200 show it without flooding
    // the event journal other tests read.
    let run = || {
        let mut body = String::from(
            "[containers.a]\nhealth = { command = [\"/bin/true\"], interval = \"1s\" }\n",
        );
        for i in 0..200 {
            body.push_str(&format!(
                "[containers.d{i}]\ndepends_on = {{ a = \"healthy\" }}\n"
            ));
        }
        let mut h = H::new(&body);
        h.up();
        assert_eq!(h.state("d0"), State::Waiting);
        h.sup.on_check("a", Exit::Code(0));
        for i in 0..200 {
            let name = format!("d{i}");
            assert_eq!(
                (h.state(&name), h.starts(&name)),
                (State::Running, 1),
                "{name}"
            );
        }
    };
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn a_failed_dependency_keeps_its_dependent_waiting() {
    let mut h = H::new(
        "[containers.a]\nrestart = \"no\"\n[containers.b]\ndepends_on = { a = \"completed\" }\n",
    );
    h.up();
    h.exits("a", 2);
    assert_eq!(h.state("a"), State::Exited(Exit::Code(2)));
    assert_eq!(h.state("b"), State::Waiting);
    assert_eq!(h.starts("b"), 0);
}

#[test]
fn restart_always_comes_back_after_its_backoff() {
    let mut h =
        H::new("[containers.a]\nrestart = \"always\"\nrestart_backoff = { initial = \"200ms\" }\n");
    h.up();
    let first = h.pid("a");
    h.exits("a", 1);
    assert!(matches!(h.state("a"), State::Backoff(_)));
    let due = h.timer(is_restart("a")).unwrap();
    assert!(
        due > Duration::from_millis(100) && due <= Duration::from_millis(200),
        "{due:?}"
    );
    assert!(h.fire(is_restart("a")));
    assert_eq!(h.state("a"), State::Running);
    assert_ne!(h.pid("a"), first);
    assert_eq!(h.sup.live["a"].restarts, 1);
}

#[test]
fn the_backoff_doubles_after_each_quick_failure() {
    let mut h = H::new(
        "[containers.a]\nrestart = \"always\"\nrestart_backoff = { initial = \"100ms\", max = \"10s\" }\n",
    );
    h.up();
    let mut delays = Vec::new();
    for _ in 0..3 {
        h.exits("a", 1);
        delays.push(h.timer(is_restart("a")).unwrap());
        assert!(h.fire(is_restart("a")));
    }
    assert!(delays[1] > delays[0] && delays[2] > delays[1], "{delays:?}");
}

#[test]
fn restart_no_leaves_the_container_exited() {
    let mut h = H::new("[containers.a]\nrestart = \"no\"\n");
    h.up();
    h.exits("a", 3);
    assert_eq!(h.state("a"), State::Exited(Exit::Code(3)));
    assert!(h.timer(is_restart("a")).is_none());
}

#[test]
fn on_failure_restarts_a_failure_but_not_a_success() {
    let mut h = H::new(
        "[containers.a]\nrestart = \"on-failure\"\n[containers.b]\nrestart = \"on-failure\"\n",
    );
    h.up();
    h.exits("a", 0);
    h.exits("b", 1);
    assert_eq!(h.state("a"), State::Exited(Exit::Code(0)));
    assert!(matches!(h.state("b"), State::Backoff(_)));
}

#[test]
fn start_limit_gives_up_and_says_why() {
    let mut h = H::new(
        "[containers.a]\nrestart = \"always\"\nrestart_backoff = { initial = \"0\" }\n\
         start_limit = { burst = 3, interval = \"60s\" }\n",
    );
    h.up();
    for _ in 0..2 {
        h.exits("a", 1);
        assert!(h.fire(is_restart("a")));
    }
    h.exits("a", 1);
    let State::Failed(why) = h.state("a") else {
        panic!("not failed: {:?}", h.state("a"));
    };
    assert!(why.contains("start"), "{why}");
    assert_eq!(h.starts("a"), 3);
}

#[test]
fn a_start_that_fails_is_a_failed_run() {
    let mut h = H::new("[containers.a]\nrestart = \"no\"\n");
    h.fake
        .borrow_mut()
        .fail_start
        .insert("a".into(), "no such command".into());
    let seq = last_seq();
    h.up();
    assert_eq!(h.state("a"), State::Exited(Exit::Code(127)));
    assert!(
        h.events_since(seq)
            .iter()
            .any(|e| e == "a: failed to start: no such command"),
        "{:?}",
        h.events_since(seq)
    );
}

#[test]
fn a_sigkill_counted_by_the_cgroup_is_an_oom_kill() {
    let mut h = H::new("[containers.a]\nrestart = \"no\"\n");
    h.up();
    h.fake.borrow_mut().oom.insert("a".into(), 1);
    h.killed("a", libc::SIGKILL);
    assert_eq!(h.state("a"), State::Exited(Exit::Oom));
}

#[test]
fn a_sigkill_without_an_oom_count_is_a_kill() {
    let mut h = H::new("[containers.a]\nrestart = \"no\"\n");
    h.up();
    h.killed("a", libc::SIGKILL);
    assert_eq!(h.state("a"), State::Exited(Exit::Signal(libc::SIGKILL)));
}

const CHECKED: &str = "[containers.a]\nrestart = \"always\"\nrestart_backoff = { initial = \"0\" }\n\
    health = { command = [\"/bin/true\"], interval = \"1s\", retries = 2 }\n";

#[test]
fn health_turns_unhealthy_after_its_retries_and_healthy_again() {
    let mut h = H::new(&CHECKED.replace("restart = \"always\"", "restart = \"no\""));
    h.up();
    assert_eq!(h.sup.live["a"].health, Some(Health::Starting));
    h.sup.on_check("a", Exit::Code(0));
    assert_eq!(h.sup.live["a"].health, Some(Health::Healthy));
    h.sup.on_check("a", Exit::Code(1));
    assert_eq!(h.sup.live["a"].health, Some(Health::Healthy));
    h.sup.on_check("a", Exit::Code(1));
    assert_eq!(h.sup.live["a"].health, Some(Health::Unhealthy));
    h.sup.on_check("a", Exit::Code(0));
    assert_eq!(h.sup.live["a"].health, Some(Health::Healthy));
}

#[test]
fn the_first_checks_come_early_and_their_failures_wait_for_the_interval() {
    let mut h = H::new(&CHECKED.replace("interval = \"1s\"", "interval = \"30s\""));
    h.up();
    let check = |t: &Timer| matches!(t, Timer::HealthCheck(n) if n == "a");
    // The first check right after the start, not an interval later.
    assert!(
        h.timer(check)
            .is_some_and(|d| d <= Duration::from_millis(50))
    );
    h.fire(check);
    // Not up yet: no failure counts before the interval is over, and the
    // next check comes soon.
    h.sup.on_check("a", Exit::Code(1));
    h.sup.on_check("a", Exit::Code(1));
    assert_eq!(h.sup.live["a"].health_failures, 0);
    assert!(
        h.timer(check)
            .is_some_and(|d| d <= Duration::from_millis(500))
    );
    // Up: healthy at once, then checked every interval.
    h.sup.timers.retain(|std::cmp::Reverse((_, t))| !check(t));
    h.sup.on_check("a", Exit::Code(0));
    assert_eq!(h.sup.live["a"].health, Some(Health::Healthy));
    let d = h.timer(check).unwrap();
    assert!(d > Duration::from_secs(29), "{d:?}");
    // A container still failing after its interval: failures count.
    let mut h = H::new(&CHECKED.replace("interval = \"1s\"", "interval = \"30s\""));
    h.up();
    h.running_for("a", Duration::from_secs(31));
    h.sup.timers.retain(|std::cmp::Reverse((_, t))| !check(t));
    h.sup.on_check("a", Exit::Code(1));
    assert_eq!(h.sup.live["a"].health_failures, 1);
    assert!(h.timer(check).is_some_and(|d| d > Duration::from_secs(29)));
}

#[test]
fn failures_in_the_start_period_do_not_count() {
    let mut h = H::new(&CHECKED.replace("retries = 2", "retries = 1, start_period = \"60s\""));
    h.up();
    h.sup.on_check("a", Exit::Code(1));
    h.sup.on_check("a", Exit::Code(1));
    assert_eq!(h.sup.live["a"].health, Some(Health::Starting));
    assert_eq!(h.state("a"), State::Running);
}

#[test]
fn an_unhealthy_container_is_stopped_and_started_again() {
    let mut h = H::new(CHECKED);
    h.up();
    h.running_for("a", Duration::from_secs(5));
    let pid = h.pid("a");
    h.sup.on_check("a", Exit::Code(1));
    h.sup.on_check("a", Exit::Code(1));
    assert!(matches!(h.state("a"), State::Stopping(_)));
    assert_eq!(h.fake.borrow().signals_to(pid), [libc::SIGTERM]);
    h.sup.child_exited(pid, libc::SIGTERM);
    assert_eq!(h.state("a"), State::Running);
    assert_ne!(h.pid("a"), pid);
    assert_eq!(h.sup.live["a"].restarts, 1);
    assert!(!h.sup.live["a"].user_stopped);
}

#[test]
fn health_on_failure_says_what_an_unhealthy_container_gets() {
    // Up with `on_failure = action`, its check failing `fails` times.
    let unhealthy = |action: &str, fails: usize| {
        let body = CHECKED.replace(
            "retries = 2",
            &format!("retries = 2, on_failure = \"{action}\""),
        );
        let mut h = H::new(&body);
        h.up();
        h.running_for("a", Duration::from_secs(5));
        let pid = h.pid("a");
        for _ in 0..fails {
            h.sup.on_check("a", Exit::Code(1));
        }
        (h, pid)
    };
    // none: only its state says so; it keeps running.
    let (h, pid) = unhealthy("none", 4);
    assert_eq!((h.state("a"), h.pid("a")), (State::Running, pid));
    assert_eq!(h.sup.live["a"].health, Some(Health::Unhealthy));
    assert!(h.fake.borrow().signals_to(pid).is_empty());
    // stop: stopped, and it stays so (as after `rkstack stop`).
    let (mut h, pid) = unhealthy("stop", 2);
    assert_eq!(h.fake.borrow().signals_to(pid), [libc::SIGTERM]);
    h.sup.child_exited(pid, libc::SIGTERM);
    assert_eq!((h.state("a"), h.starts("a")), (State::Stopped, 1));
    // kill: SIGKILL, then its restart policy brings it back.
    let (mut h, pid) = unhealthy("kill", 2);
    assert_eq!(h.fake.borrow().signals_to(pid), [libc::SIGKILL]);
    h.sup.child_exited(pid, libc::SIGKILL);
    assert!(matches!(h.state("a"), State::Backoff(_)));
}

#[test]
fn a_health_check_runs_in_the_container_and_its_timeout_kills_it() {
    let mut h = H::new(CHECKED);
    h.up();
    assert!(h.fire(|t| matches!(t, Timer::HealthCheck(n) if n == "a")));
    let check = *h.fake.borrow().execs.last().unwrap();
    assert!(h.fire(|t| matches!(t, Timer::HealthTimeout(n, p) if n == "a" && *p == check)));
    assert_eq!(h.fake.borrow().signals_to(check), [libc::SIGKILL]);
    // Its end is the check's failure, not the container's.
    h.sup.child_exited(check, libc::SIGKILL);
    assert_eq!(h.state("a"), State::Running);
}

#[test]
fn a_start_of_a_running_container_starts_nothing() {
    let mut h = H::new(TWO);
    h.up();
    h.sup.start("a");
    assert_eq!(h.starts("a"), 1);
}

#[test]
fn events_carry_their_kind_and_facts_as_fields() {
    use crate::supervisor::events::{Kind as K, since};
    let mut h = H::new(
        "[containers.a]\nrestart = \"always\"\nrestart_backoff = { initial = \"300ms\" }\n\
         start_limit = { burst = 2, interval = \"60s\" }\n",
    );
    let seq = last_seq();
    h.up();
    let pid = h.pid("a");
    h.exits("a", 3);
    assert!(h.fire(is_restart("a")));
    h.killed("a", libc::SIGKILL);
    let mine: Vec<_> = since(seq)
        .into_iter()
        .filter(|e| e.stack == h.stack && e.container.as_deref() == Some("a"))
        .collect();
    let kinds: Vec<K> = mine.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [K::Started, K::Restarting, K::Started, K::Failed],
        "{mine:?}"
    );
    assert_eq!(mine[0].facts.pid, Some(pid));
    assert_eq!(mine[1].facts.exit_code, Some(3));
    assert_eq!(mine[1].facts.after_ms, Some(300));
    assert_eq!(mine[3].facts.signal, Some(libc::SIGKILL));
    assert!(mine[3].facts.reason.is_some());
    let json = serde_json::to_value(&mine[1]).unwrap();
    assert_eq!(json["kind"], "restarting");
    assert_eq!(json["exit_code"], 3);
    assert_eq!(json["container"], "a");
}

#[test]
fn metrics_show_every_state_oom_kills_limits_and_start_times() {
    let mut h = H::new(
        "[containers.a]\nrestart = \"no\"\nresources = { memory = \"64M\" }\n[containers.b]\n",
    );
    h.up();
    h.fake.borrow_mut().oom.insert("a".into(), 1);
    h.killed("a", libc::SIGKILL);
    let m = h.sup.metrics();
    assert_eq!(m.stack, h.stack);
    let of = |name: &str| m.containers.iter().find(|c| c.info.name == name).unwrap();
    let (a, b) = (of("a"), of("b"));
    assert_eq!(a.info.state, crate::control::ContainerState::Exited);
    assert_eq!(a.info.last_exit, Some(Exit::Oom));
    assert_eq!(a.oom_kills, Some(1));
    assert_eq!(a.memory_limit, Some(64 << 20));
    assert_eq!(a.started_at, None, "a start time for an ended run");
    assert_eq!(b.info.state, crate::control::ContainerState::Running);
    assert!(b.started_at.is_some_and(|t| t > 1.6e9), "{b:?}");
    assert_eq!(b.memory_limit, None);
}

#[test]
fn an_exec_killed_by_the_oom_killer_says_so() {
    let mut h = H::new("[containers.a]\n");
    h.up();
    let null = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
    let exec = |h: &mut H| {
        let (exit, status) = tokio::sync::oneshot::channel();
        let answer = h.ask(Command::Exec(crate::control::Exec {
            container: "a".into(),
            command: vec!["/bin/hog".into()],
            env: Vec::new(),
            stdio: [null(), null(), null()],
            terminal: None,
            exit,
        }));
        drop(answer);
        let pid = *h.fake.borrow().execs.last().unwrap();
        (pid, status)
    };
    // Killed, and the container's cgroup counted an OOM kill meanwhile.
    let (pid, mut status) = exec(&mut h);
    h.fake.borrow_mut().oom.insert("a".into(), 1);
    h.sup.child_exited(pid, libc::SIGKILL);
    assert_eq!(status.try_recv().ok(), Some(libc::SIGKILL));
    let said = |h: &H| {
        h.events_since(0)
            .iter()
            .filter(|e| e.contains("killed by the OOM killer"))
            .count()
    };
    assert_eq!(said(&h), 1);
    // A plain SIGKILL (no new OOM kill) is not called one.
    let (pid, _status) = exec(&mut h);
    h.sup.child_exited(pid, libc::SIGKILL);
    assert_eq!(said(&h), 1);
}
