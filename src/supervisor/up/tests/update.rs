//! Generations and the health gate of `apply`, rollback and gated edits.

use super::*;

const SECOND: Duration = Duration::from_secs(1);

/// The answer's JSON, or its error's kind and words.
fn answer(
    rx: &mut tokio::sync::oneshot::Receiver<Result<Reply, ControlError>>,
) -> Option<Result<serde_json::Value, (crate::control::ErrorKind, String)>> {
    match rx.try_recv() {
        Ok(Ok(Reply::Json(b))) => Some(Ok(serde_json::from_slice(&b).unwrap())),
        Ok(Err(e)) => Some(Err((e.kind, e.error))),
        _ => None,
    }
}

/// `a` of TWO recreated by an apply: its old process ends, the new starts.
fn recreate_a(
    h: &mut H,
    body: &str,
    stable: Duration,
) -> (
    tokio::sync::oneshot::Receiver<Result<Reply, ControlError>>,
    i32,
) {
    let old = h.pid("a");
    let rx = h.apply(body, 10 * SECOND, stable);
    assert_eq!(h.fake.borrow().signals_to(old), [libc::SIGTERM]);
    h.sup.child_exited(old, wait_status(0));
    h.sup.check_gate();
    (rx, old)
}

#[test]
fn an_apply_is_committed_once_its_new_containers_are_ready_and_the_rest_keep_running() {
    let mut h = H::new(TWO);
    h.up();
    let b = h.pid("b");
    let (mut rx, old) = recreate_a(
        &mut h,
        "[containers.a]\nenv = { V = \"2\" }\n[containers.b]\n",
        Duration::ZERO,
    );
    assert_ne!(h.pid("a"), old);
    let v = answer(&mut rx).expect("answered").expect("committed");
    assert_eq!(v["outcome"], "committed");
    assert_eq!(v["generation"], 2);
    assert_eq!(h.pid("b"), b, "b did not change");
    assert_eq!(h.history(), ["1 committed (start)", "2 committed (apply)"]);
    // The file holds the generation that runs.
    let text = std::fs::read_to_string(&h.sup.opts.file).unwrap();
    assert!(text.contains("V = \"2\""));
}

#[test]
fn a_new_container_that_exits_rolls_the_apply_back() {
    let mut h = H::new(TWO);
    h.up();
    let before = std::fs::read_to_string(&h.sup.opts.file).unwrap();
    let b = h.pid("b");
    let (mut rx, _) = recreate_a(
        &mut h,
        "[containers.a]\nenv = { V = \"2\" }\n[containers.b]\n",
        5 * SECOND,
    );
    assert!(
        answer(&mut rx).is_none(),
        "not decided within the stable time"
    );
    h.exits("a", 3);
    h.sup.check_gate();
    let (kind, why) = answer(&mut rx).expect("answered").expect_err("rolled back");
    assert_eq!(kind, crate::control::ErrorKind::RolledBack);
    assert!(why.contains("a exited with status 3"), "{why}");
    assert_eq!(h.state("a"), State::Running, "a of generation 1 again");
    assert_eq!(h.pid("b"), b);
    assert_eq!(std::fs::read_to_string(&h.sup.opts.file).unwrap(), before);
    assert_eq!(
        h.history(),
        [
            "1 committed (start)",
            "2 rolled-back: a exited with status 3 (apply)",
            "3 committed (rollback to 1 (a exited with status 3))"
        ]
    );
}

#[test]
fn a_container_never_healthy_in_time_rolls_the_apply_back() {
    let mut h = H::new(TWO);
    h.up();
    let old = h.pid("a");
    let mut rx = h.apply(
        "[containers.a]\nenv = { V = \"2\" }\nhealth = { command = [\"/bin/true\"] }\n[containers.b]\n",
        Duration::from_millis(1),
        Duration::ZERO,
    );
    h.sup.child_exited(old, wait_status(0));
    std::thread::sleep(Duration::from_millis(5));
    assert!(h.timer(|t| *t == Timer::Gate).is_some());
    h.sup.gate_due();
    let (_, why) = answer(&mut rx).expect("answered").expect_err("rolled back");
    assert!(
        why.contains("not ready within 1ms: a is not healthy yet"),
        "{why}"
    );
}

#[test]
fn a_stable_time_is_waited_for_before_the_commit() {
    let mut h = H::new(TWO);
    h.up();
    let (mut rx, _) = recreate_a(
        &mut h,
        "[containers.a]\nenv = { V = \"2\" }\n[containers.b]\n",
        Duration::from_millis(40),
    );
    assert!(answer(&mut rx).is_none());
    assert!(
        h.timer(|t| *t == Timer::Gate).is_some(),
        "the loop wakes for it"
    );
    std::thread::sleep(Duration::from_millis(50));
    h.sup.gate_due();
    assert_eq!(answer(&mut rx).unwrap().unwrap()["outcome"], "committed");
}

#[test]
fn an_invalid_apply_changes_nothing_and_is_recorded() {
    let mut h = H::new(TWO);
    h.up();
    let mut rx = h.apply("[containers.a]\nmemory = 5\n", SECOND, Duration::ZERO);
    let (kind, _) = answer(&mut rx).unwrap().unwrap_err();
    assert_eq!(kind, crate::control::ErrorKind::InvalidStack);
    assert!(h.fake.borrow().signals.is_empty());
    let h2 = h.history();
    assert_eq!(h2.len(), 2);
    assert!(h2[1].starts_with("2 rejected: "), "{h2:?}");
    // The running generation is still the first.
    assert_eq!(h.sup.update.gens.current().map(|g| g.number), Some(1));
}

#[test]
fn a_second_apply_waits_for_the_first_to_be_decided() {
    let mut h = H::new(TWO);
    h.up();
    let _first = recreate_a(
        &mut h,
        "[containers.a]\nenv = { V = \"2\" }\n[containers.b]\n",
        5 * SECOND,
    );
    let mut second = h.apply(
        "[containers.a]\nenv = { V = \"3\" }\n[containers.b]\n",
        SECOND,
        Duration::ZERO,
    );
    let (kind, why) = answer(&mut second).unwrap().unwrap_err();
    assert_eq!(kind, crate::control::ErrorKind::Conflict);
    assert!(why.contains("generation 2 is still being applied"), "{why}");
}

#[test]
fn rollback_goes_back_to_the_last_committed_generation() {
    let mut h = H::new(TWO);
    h.up();
    let b = h.pid("b");
    let (mut rx, _) = recreate_a(
        &mut h,
        "[containers.a]\nenv = { V = \"2\" }\n[containers.b]\n",
        Duration::ZERO,
    );
    assert!(answer(&mut rx).unwrap().is_ok());
    let a2 = h.pid("a");
    let mut back = h.ask(Command::Rollback(None));
    // Answered at once: the plan is under way.
    let v = answer(&mut back).unwrap().unwrap();
    assert_eq!(v["to"], 1);
    h.sup.child_exited(a2, wait_status(0));
    assert_ne!(h.pid("a"), a2);
    assert_eq!(h.pid("b"), b);
    assert!(
        !std::fs::read_to_string(&h.sup.opts.file)
            .unwrap()
            .contains("V = \"2\"")
    );
    assert_eq!(
        h.history().last().map(String::as_str),
        Some("3 committed (rollback to 1 (requested))")
    );
    // Nothing committed before the first: nowhere to go.
    let mut h = H::new(TWO);
    h.up();
    let mut none = h.ask(Command::Rollback(None));
    assert_eq!(
        answer(&mut none).unwrap().unwrap_err().0,
        crate::control::ErrorKind::Conflict
    );
}

#[test]
fn an_edit_is_gated_when_the_file_asks_for_it() {
    let mut h = H::new(TWO);
    h.up();
    let gated = "[update]\nrollback = \"auto\"\nstable = \"0s\"\n[containers.a]\nenv = { V = \"2\" }\n[containers.b]\n";
    let old = h.pid("a");
    h.edit(gated).unwrap();
    assert!(h.sup.update.gate.is_some());
    h.sup.child_exited(old, wait_status(0));
    h.exits("a", 1);
    h.sup.check_gate();
    let hist = h.history();
    assert!(
        hist[1].starts_with("2 rolled-back: a exited with status 1 (reload (test))"),
        "{hist:?}"
    );
    assert!(
        !std::fs::read_to_string(&h.sup.opts.file)
            .unwrap()
            .contains("rollback")
    );
    // An unchanged file (the rollback's own write, seen by the watch) makes
    // no generation.
    h.sup.try_reload("file changed").unwrap();
    assert_eq!(h.history().len(), 3);
}

#[test]
fn a_restarted_supervisor_finishes_a_gate_under_way() {
    let mut h = H::new(TWO);
    h.up();
    let _rx = recreate_a(
        &mut h,
        "[containers.a]\nenv = { V = \"2\" }\n[containers.b]\n",
        5 * SECOND,
    );
    assert!(h.sup.update.gate.is_some());
    let (dir, stack) = (h.dir, h.stack.clone());
    let text = std::fs::read_to_string(dir.path().join("stack.toml")).unwrap();
    let mut again = H::in_dir(dir, stack, "");
    // The file as the crashed supervisor left it: generation 2's.
    std::fs::write(&again.sup.opts.file, &text).unwrap();
    again.sup.first_generation(&text);
    let gate = again.sup.update.gate.as_ref().expect("resumed");
    assert_eq!(gate.generation, 2);
    // Looked at in the loop's first turn, not only when some event comes
    // (with every container adopted and quiet, none may).
    assert!(
        again
            .sup
            .timers
            .iter()
            .any(|t| matches!(t.0.1, super::super::Timer::Gate)),
        "no timer for the resumed gate"
    );
    // Written before the file: a crash in between finds the old file, and
    // the generation that never ran is recorded as such.
    let mut h = H::new(TWO);
    h.up();
    let text1 = std::fs::read_to_string(&h.sup.opts.file).unwrap();
    let _rx = recreate_a(
        &mut h,
        "[containers.a]\nenv = { V = \"2\" }\n[containers.b]\n",
        5 * SECOND,
    );
    let (dir, stack) = (h.dir, h.stack.clone());
    let mut again = H::in_dir(dir, stack, "");
    std::fs::write(&again.sup.opts.file, &text1).unwrap();
    again.sup.first_generation(&text1);
    assert!(again.sup.update.gate.is_none());
    assert_eq!(
        again.history(),
        [
            "1 committed (start)",
            "2 rolled-back: the supervisor stopped before it was applied (apply)"
        ]
    );
}

#[test]
fn the_files_keep_decides_how_many_generations_stay() {
    let mut h = H::new(TWO);
    h.up();
    for v in 2..=5 {
        h.edit(&format!(
            "[update]\nkeep = 2\n[containers.a]\nenv = {{ V = \"{v}\" }}\n[containers.b]\n"
        ))
        .unwrap();
    }
    let numbers: Vec<u64> = h.sup.update.gens.list().iter().map(|g| g.number).collect();
    assert_eq!(numbers, [4, 5]);
}
