//! A supervisor started after a crash of the previous one: what it
//! adopts, cleans up, and keeps stopped or down.

use super::stops::SLOW;
use super::*;

/// Runs `body` up, then a second supervisor on the same folders, as after
/// a crash of the first (`prepare` changes the first before that; what
/// ran for the first still runs unless it took it out of `alive`).
fn after_crash(body: &str, prepare: impl FnOnce(&mut H)) -> H {
    let mut first = H::new(body);
    first.up();
    prepare(&mut first);
    first.sup.save_state();
    let alive = first.fake.borrow().alive.clone();
    let H { dir, stack, .. } = first;
    let mut second = H::in_dir(dir, stack, body);
    second.fake.borrow_mut().alive = alive;
    second.fake.borrow_mut().next_pid = 5000;
    second.up();
    second
}

#[test]
fn a_restarted_supervisor_adopts_what_still_runs() {
    let mut pids = (0, 0);
    let h = after_crash(TWO, |h| pids = (h.pid("a"), h.pid("b")));
    assert_eq!((h.pid("a"), h.pid("b")), pids);
    assert_eq!((h.starts("a"), h.starts("b")), (0, 0));
    assert_eq!(h.state("a"), State::Running);
}

#[test]
fn a_recorded_process_that_ended_is_cleaned_up_and_started_anew() {
    let h = after_crash(TWO, |h| {
        let a = h.pid("a");
        h.fake.borrow_mut().alive.remove(&a);
    });
    assert_eq!(h.starts("a"), 1);
    assert_eq!(h.starts("b"), 0);
    assert!(h.fake.borrow().destroyed.contains(&"a".to_string()));
}

#[test]
fn a_pid_reused_by_another_process_is_not_adopted() {
    let h = after_crash(TWO, |h| {
        let a = h.pid("a");
        h.fake.borrow_mut().alive.insert(a, 1);
    });
    assert_eq!(h.starts("a"), 1, "a new a, not the stranger");
}

#[test]
fn a_users_stop_holds_across_a_supervisor_crash() {
    let h = after_crash(TWO, |h| {
        let a = h.pid("a");
        h.sup.stop("a");
        h.sup.child_exited(a, wait_status(0));
        h.fake.borrow_mut().alive.remove(&a);
    });
    assert_eq!(h.state("a"), State::Stopped);
    assert!(h.sup.live["a"].user_stopped);
    assert_eq!(h.starts("a"), 0);
}

#[test]
fn a_stop_under_way_goes_on_after_a_supervisor_crash() {
    let mut a = 0;
    let h = after_crash(SLOW, |h| {
        a = h.pid("a");
        h.sup.stop("a");
    });
    assert!(matches!(h.state("a"), State::Stopping(_)));
    assert_eq!(h.fake.borrow().signals_to(a), [libc::SIGTERM]);
}

#[test]
fn a_container_given_up_on_stays_down_after_a_crash() {
    let body = "[containers.a]\nrestart = \"always\"\nrestart_backoff = { initial = \"0\" }\n\
                start_limit = { burst = 1, interval = \"60s\" }\n";
    let h = after_crash(body, |h| {
        let a = h.pid("a");
        h.exits("a", 1);
        h.fake.borrow_mut().alive.remove(&a);
    });
    assert!(
        matches!(h.state("a"), State::Failed(_)),
        "{:?}",
        h.state("a")
    );
    assert_eq!(h.starts("a"), 0);
}

#[test]
fn an_instance_nobody_recorded_is_ended_before_the_start() {
    let mut h = H::new(TWO);
    h.fake.borrow_mut().leftovers.insert("a".into());
    let seq = last_seq();
    h.up();
    assert!(
        h.events_since(seq)
            .iter()
            .any(|e| e.starts_with("a: ended an unrecorded instance")),
        "{:?}",
        h.events_since(seq)
    );
    assert_eq!(h.starts("a"), 1);
}

/// An adopted container's uptime counts from its real start (the state
/// file keeps it), not from the new supervisor's.
#[test]
fn an_adopted_container_keeps_its_uptime() {
    let h = after_crash(TWO, |h| {
        let at = crate::time::unix_millis().unwrap() - 30_000;
        h.sup.live.get_mut("a").unwrap().started_at = Some(at);
    });
    let up = h.sup.live["a"].started.unwrap().elapsed();
    assert!(up >= Duration::from_secs(29), "uptime {up:?}");
    assert!(h.sup.live["b"].started.unwrap().elapsed() < Duration::from_secs(5));
}
