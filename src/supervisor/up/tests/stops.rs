//! Stops as states, requests during them, reloads and their plans, the
//! stack's shutdown order.

use super::*;

pub(super) const SLOW: &str =
    "[containers.a]\nrestart = \"always\"\nstop_timeout = \"10s\"\n[containers.b]\n";

#[test]
fn a_stop_is_a_state_until_the_container_ends() {
    let mut h = H::new(SLOW);
    h.up();
    let pid = h.pid("a");
    assert!(h.sup.stop("a"));
    assert!(matches!(h.state("a"), State::Stopping(_)));
    assert_eq!(h.fake.borrow().signals_to(pid), [libc::SIGTERM]);
    let due = h.timer(is_stop_kill("a")).unwrap();
    assert!(due > Duration::from_secs(9), "{due:?}");
    h.sup.child_exited(pid, wait_status(0));
    assert_eq!(h.state("a"), State::Stopped);
    assert!(h.fake.borrow().destroyed.contains(&"a".to_string()));
    // Stopped on purpose: restart = "always" does not bring it back.
    assert!(h.timer(is_restart("a")).is_none());
    assert_eq!(h.starts("a"), 1);
}

#[test]
fn a_stop_past_its_timeout_kills_and_then_stops_waiting() {
    let mut h = H::new(SLOW);
    h.up();
    let pid = h.pid("a");
    h.sup.stop("a");
    assert!(h.fire(is_stop_kill("a")));
    assert_eq!(
        h.fake.borrow().signals_to(pid),
        [libc::SIGTERM, libc::SIGKILL]
    );
    assert!(matches!(h.state("a"), State::Stopping(_)));
    assert!(h.fire(|t| matches!(t, Timer::StopGiveUp(n, _) if n == "a")));
    assert_eq!(h.state("a"), State::Stopped);
}

#[test]
fn the_timer_of_an_earlier_stop_does_nothing() {
    let mut h = H::new(SLOW);
    h.up();
    let first = h.pid("a");
    h.sup.stop("a");
    h.sup.child_exited(first, wait_status(0));
    drop(h.ask(Command::Start("a".into())));
    let second = h.pid("a");
    assert!(h.fire(is_stop_kill("a")));
    assert!(h.fake.borrow().signals_to(second).is_empty());
    assert_eq!(h.state("a"), State::Running);
}

#[test]
fn a_stop_request_is_answered_once_stopped_and_others_meanwhile() {
    let mut h = H::new(SLOW);
    h.up();
    let pid = h.pid("a");
    let mut stop = h.ask(Command::Stop("a".into()));
    assert_eq!(answered_state(&mut stop), None);
    let mut list = h.ask(Command::List);
    assert!(
        matches!(list.try_recv(), Ok(Ok(_))),
        "ps is answered during the stop"
    );
    let mut restart_b = h.ask(Command::Restart("b".into()));
    assert_eq!(answered_state(&mut restart_b), None, "b stops first");
    let b = h.pid("b");
    h.sup.child_exited(b, wait_status(0));
    assert_eq!(answered_state(&mut restart_b).as_deref(), Some("running"));
    h.sup.child_exited(pid, wait_status(0));
    assert_eq!(answered_state(&mut stop).as_deref(), Some("stopped"));
}

#[test]
fn a_start_while_stopping_starts_once_it_ended() {
    let mut h = H::new(SLOW);
    h.up();
    let pid = h.pid("a");
    h.sup.stop("a");
    let mut start = h.ask(Command::Start("a".into()));
    assert_eq!(answered_state(&mut start), None);
    assert_eq!(h.starts("a"), 1, "no second instance while one runs");
    h.sup.child_exited(pid, wait_status(0));
    assert_eq!(answered_state(&mut start).as_deref(), Some("running"));
    assert_eq!(h.starts("a"), 2);
}

#[test]
fn a_reload_of_an_unchanged_file_does_nothing() {
    let mut h = H::new(TWO);
    h.up();
    let plan = h.edit(TWO).unwrap();
    assert!(plan.is_noop());
    assert!(h.fake.borrow().signals.is_empty());
    assert_eq!((h.starts("a"), h.starts("b")), (1, 1));
}

#[test]
fn a_reload_recreates_only_what_changed_after_its_stop() {
    let mut h = H::new(SLOW);
    h.up();
    let (a, b) = (h.pid("a"), h.pid("b"));
    h.edit("[containers.a]\nrestart = \"always\"\nstop_timeout = \"10s\"\nenv = { V = \"2\" }\n[containers.b]\n")
        .unwrap();
    assert_eq!(h.fake.borrow().signals_to(a), [libc::SIGTERM]);
    assert_eq!(h.starts("a"), 1, "the new one waits for the old one's end");
    h.sup.child_exited(a, wait_status(0));
    assert_eq!(h.starts("a"), 2);
    assert_eq!(h.state("a"), State::Running);
    assert_eq!(h.pid("b"), b);
    assert!(h.fake.borrow().signals_to(b).is_empty());
}

#[test]
fn a_reload_that_changes_logging_applies_it_to_the_running_container() {
    let mut h = H::new(TWO);
    h.up();
    let a = h.pid("a");
    h.edit("[containers.a]\nlogging = { max_size = \"8k\", max_files = 5 }\n[containers.b]\n")
        .unwrap();
    assert_eq!(h.pid("a"), a);
    assert_eq!(h.sup.live["a"].log.rotation(), (8192, 5));
    assert!(h.fake.borrow().signals.is_empty());
}

#[test]
fn an_invalid_file_changes_nothing() {
    let mut h = H::new(TWO);
    h.up();
    let e = h.edit("[containers.a]\nmemory = 5\n").unwrap_err();
    assert!(e.error.contains("not a valid stack file"), "{}", e.error);
    assert!(h.fake.borrow().signals.is_empty());
    assert_eq!(h.state("a"), State::Running);
    assert!(!h.sup.last_reload_ok);
}

#[test]
fn a_container_gone_from_the_file_is_stopped_and_removed() {
    let mut h = H::new(TWO);
    h.up();
    let b = h.pid("b");
    h.edit("[containers.a]\n").unwrap();
    assert!(matches!(h.state("b"), State::Stopping(_)));
    h.sup.child_exited(b, wait_status(0));
    assert!(!h.sup.live.contains_key("b"));
    assert!(h.fake.borrow().destroyed.contains(&"b".to_string()));
}

#[test]
fn a_reload_during_a_plan_waits_for_it() {
    let mut h = H::new(SLOW);
    h.up();
    let a = h.pid("a");
    h.edit("[containers.a]\nrestart = \"always\"\nstop_timeout = \"10s\"\nenv = { V = \"2\" }\n[containers.b]\n")
        .unwrap();
    // Saved again while a still stops: the reload comes after that plan.
    let rootfs = h.dir.path().join("rootfs");
    std::fs::write(
        &h.sup.opts.file,
        H::text(&h.stack, &rootfs, "[containers.a]\nrestart = \"always\"\nstop_timeout = \"10s\"\nenv = { V = \"3\" }\n[containers.b]\n"),
    )
    .unwrap();
    h.sup.reload("file changed");
    assert_eq!(h.starts("a"), 1);
    h.sup.child_exited(a, wait_status(0));
    // The first plan started V=2, the reload after it stops that one.
    assert_eq!(h.starts("a"), 2);
    assert!(matches!(h.state("a"), State::Stopping(_)));
    let second = h.pid("a");
    h.sup.child_exited(second, wait_status(0));
    assert_eq!(h.starts("a"), 3);
    assert_eq!(
        h.sup.live["a"].spec.config.env.get("V").map(String::as_str),
        Some("3")
    );
}

#[test]
fn new_limits_are_written_without_a_restart() {
    let mut h = H::new("[containers.a]\nresources = { memory = \"64M\" }\n");
    h.up();
    h.edit("[containers.a]\nresources = { memory = \"128M\" }\n")
        .unwrap();
    assert_eq!(h.starts("a"), 1);
    let lim = h.fake.borrow().limits.get("a").cloned().unwrap();
    assert_eq!(lim.memory, Some(128 * 1024 * 1024));
}

const LEVELS: &str =
    "[containers.a]\n[containers.b]\ndepends_on = [\"a\"]\n[containers.c]\ndepends_on = [\"b\"]\n";

#[test]
fn the_stack_stops_dependents_first_a_level_at_a_time() {
    let mut h = H::new(LEVELS);
    h.up();
    let (a, b, c) = (h.pid("a"), h.pid("b"), h.pid("c"));
    h.sup.begin_shutdown();
    let signalled = |h: &H| {
        let f = h.fake.borrow();
        [a, b, c].map(|p| !f.signals_to(p).is_empty())
    };
    assert_eq!(signalled(&h), [false, false, true]);
    h.sup.child_exited(c, wait_status(0));
    assert_eq!(signalled(&h), [false, true, true]);
    assert!(!h.sup.stack_down());
    h.sup.child_exited(b, wait_status(0));
    assert_eq!(signalled(&h), [true, true, true]);
    h.sup.child_exited(a, wait_status(0));
    assert!(h.sup.stack_down());
}

#[test]
fn nothing_starts_while_the_stack_stops() {
    let mut h = H::new(
        "[containers.a]\nrestart = \"always\"\nrestart_backoff = { initial = \"0\" }\n[containers.b]\ndepends_on = [\"a\"]\n",
    );
    h.up();
    h.sup.begin_shutdown();
    // a's dependent is being stopped; a itself dies meanwhile.
    h.exits("a", 1);
    h.fire(is_restart("a"));
    assert_eq!(h.starts("a"), 1);
    let e = h.edit("[containers.a]\nenv = { V = \"2\" }\n").unwrap_err();
    assert_eq!(e.error, "the stack is stopping");
}

#[test]
fn a_reload_during_an_unhealthy_restart_leaves_one_instance() {
    let body = "[containers.a]\nrestart = \"always\"\nrestart_backoff = { initial = \"0\" }\n\
                stop_timeout = \"10s\"\n\
                health = { command = [\"/bin/true\"], interval = \"1s\", retries = 1 }\n";
    let mut h = H::new(body);
    h.up();
    h.running_for("a", Duration::from_secs(5));
    let old = h.pid("a");
    // Unhealthy: its restart begins with a stop...
    h.sup.on_check("a", Exit::Code(1));
    assert!(matches!(h.state("a"), State::Stopping(_)));
    // ...and a reload that recreates it comes meanwhile.
    h.edit(&body.replace("retries = 1", "retries = 2")).unwrap();
    h.sup.child_exited(old, libc::SIGTERM);
    assert_eq!(h.starts("a"), 2, "one new instance, not two");
    assert_eq!(h.state("a"), State::Running);
    assert_eq!(
        h.sup.live["a"]
            .spec
            .config
            .health
            .as_ref()
            .map(|c| c.retries),
        Some(2),
        "the one that runs is the file's new version"
    );
}
