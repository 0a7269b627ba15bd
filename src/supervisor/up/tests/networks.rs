//! Networks as the supervisor runs them: bridges before their members,
//! addresses, published ports in the stack's rules, port conflicts, a
//! subnet the host routes elsewhere, and what a shutdown removes.

use super::*;

const NET: &str = "[networks.front]\nsubnet = \"10.88.0.0/24\"\n\
    [containers.web]\nnetworks = [\"front\"]\nports = [\"8080:80\"]\n\
    [containers.db]\nnetworks = [\"front\"]\n";

fn bridge(h: &H) -> String {
    crate::network::names::bridge(&h.stack, "front")
}

#[test]
fn members_join_the_bridge_made_for_them_with_their_own_addresses() {
    let mut h = H::new(NET);
    h.up();
    let br = bridge(&h);
    let n = h.net.borrow();
    assert!(n.links.contains(&br));
    let ips = crate::network::fake::addresses(&n);
    let got = ips.get(&br).cloned().unwrap_or_default();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_ne!(got[0], got[1]);
    drop(n);
    assert_eq!(h.state("web"), State::Running);
    assert_eq!(h.sup.live["web"].ips.len(), 1);
}

#[test]
fn a_running_containers_ports_are_in_the_rules_and_go_when_it_stops() {
    let mut h = H::new(NET);
    h.up();
    let web_ip = h.sup.live["web"].ips["front"];
    {
        let n = h.net.borrow();
        let p = n.published.as_ref().unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].host_port, p[0].container_port), (8080, 80));
        assert_eq!(p[0].container_ip, web_ip);
        assert!(n.forwarding, "published ports need forwarding");
    }
    h.sup.stop("web");
    // What the loop does once its turn is over.
    h.sup.flush_hosts();
    assert!(
        h.net.borrow().published.as_ref().unwrap().is_empty(),
        "a stopping container publishes nothing"
    );
}

#[test]
fn published_ports_are_held_through_restarts_and_let_go_when_the_container_ends() {
    let mut h = H::new(&NET.replace(
        "ports = [\"8080:80\"]\n",
        "ports = [\"8080:80\"]\nrestart = \"on-failure\"\n",
    ));
    h.up();
    let held = |h: &H| h.sup.nets.held.keys().copied().collect::<Vec<_>>();
    assert_eq!(held(&h), [("tcp", None, 8080)]);
    // A crash: waiting for its restart, the port stays reserved.
    h.exits("web", 1);
    h.sup.flush_hosts();
    assert!(matches!(h.state("web"), State::Backoff(_)));
    assert_eq!(held(&h).len(), 1);
    assert_eq!(h.net.borrow().held, 1, "held once, not again");
    // It ends for good: the port is free again.
    h.fire(|t| matches!(t, Timer::Restart(_)));
    h.exits("web", 0);
    h.sup.flush_hosts();
    assert_eq!(h.state("web"), State::Exited(Exit::Code(0)));
    assert!(held(&h).is_empty());
}

#[test]
fn a_port_that_cannot_be_held_is_said_once() {
    let mut h = H::new(NET);
    h.up();
    h.sup.nets.held.clear();
    // Another program took it between the check and the hold.
    h.net.borrow_mut().ports_in_use.insert(("tcp", 8080));
    h.sup.hosts_changed();
    h.sup.flush_hosts();
    h.sup.hosts_changed();
    h.sup.flush_hosts();
    let warned = h
        .events_since(0)
        .iter()
        .filter(|e| e.contains("8080/tcp could not be reserved"))
        .count();
    assert_eq!(warned, 1);
}

#[test]
fn a_port_another_socket_holds_refuses_the_stack_before_anything_starts() {
    let mut h = H::new(NET);
    h.net.borrow_mut().ports_in_use.insert(("tcp", 8080));
    let e = h.try_up().unwrap_err();
    assert!(e.contains("host port 8080/tcp is already in use"), "{e}");
    assert!(h.fake.borrow().starts.is_empty());
}

#[test]
fn a_reload_that_publishes_a_held_port_changes_nothing() {
    let mut h = H::new("[containers.a]\n");
    h.up();
    h.net.borrow_mut().ports_in_use.insert(("tcp", 8080));
    let e = h.edit(NET).unwrap_err();
    assert!(e.error.contains("already in use"), "{}", e.error);
    assert!(!h.sup.live.contains_key("web"));
    assert_eq!(h.starts("a"), 1);
}

#[test]
fn a_port_the_stack_itself_publishes_is_no_conflict() {
    let mut h = H::new(NET);
    h.up();
    // Its own rule holds 8080 now; a reload recreating db is fine.
    h.net.borrow_mut().ports_in_use.insert(("tcp", 8080));
    let changed = NET.replace(
        "[containers.db]\n",
        "[containers.db]\nenv = { V = \"2\" }\n",
    );
    h.edit(&changed).unwrap();
}

#[test]
fn a_subnet_the_host_routes_elsewhere_is_not_made() {
    let mut h = H::new(NET);
    h.net.borrow_mut().routes.push((
        "eth0".into(),
        crate::network::Subnet {
            addr: "10.88.0.0".parse().unwrap(),
            prefix: 16,
        },
    ));
    let seq = last_seq();
    h.up();
    assert!(!h.net.borrow().links.contains(&bridge(&h)));
    let events = h.events_since(seq);
    assert!(
        events
            .iter()
            .any(|e| e.contains("overlaps the host's route")),
        "{events:?}"
    );
    assert_eq!(
        h.starts("web"),
        0,
        "nothing joins a bridge that is not there"
    );
}

#[test]
fn a_shutdown_removes_the_bridges_and_the_rules() {
    let mut h = H::new(NET);
    h.up();
    let (web, db) = (h.pid("web"), h.pid("db"));
    h.sup.begin_shutdown();
    h.sup.child_exited(web, wait_status(0));
    h.sup.child_exited(db, wait_status(0));
    assert!(h.sup.stack_down());
    h.sup.shutdown();
    let n = h.net.borrow();
    assert!(!n.links.contains(&bridge(&h)));
    assert!(n.published.is_none());
}

#[test]
fn a_restarted_container_keeps_its_address() {
    let mut h = H::new(&NET.replace(
        "[containers.db]\n",
        "[containers.db]\nrestart = \"always\"\nrestart_backoff = { initial = \"0\" }\n",
    ));
    h.up();
    let before = h.sup.live["db"].ips["front"];
    h.exits("db", 1);
    assert!(h.fire(|t| matches!(t, Timer::Restart(n) if n == "db")));
    assert_eq!(h.sup.live["db"].ips["front"], before);
}

#[test]
fn a_burst_of_starts_writes_each_hosts_file_a_bounded_number_of_times() {
    let body: String = "[networks.front]\nsubnet = \"10.88.0.0/22\"\n".to_string()
        + &(0..100)
            .map(|i| format!("[containers.c{i}]\nnetworks = [\"front\"]\n"))
            .collect::<String>();
    let mut h = H::new(&body);
    h.up();
    h.sup.flush_hosts();
    let writes = h.sup.nets.hosts_writes.get();
    // Its own file at its start, and everyone's once after the burst:
    // not every running one again after each start (n² / 2).
    assert!(
        writes <= 2 * 100,
        "{writes} hosts files written for 100 starts"
    );
    let text =
        std::fs::read_to_string(h.sup.opts.state_dir.join(&h.stack).join("etc/c0/hosts")).unwrap();
    assert!(
        text.contains("c99"),
        "c0 knows the last one to start:\n{text}"
    );
}

#[test]
fn without_nft_a_stack_with_ports_or_networks_is_refused_before_it_starts() {
    let mut h = H::new(NET);
    h.net.borrow_mut().no_nft = true;
    let e = h.try_up().unwrap_err();
    assert!(e.contains("need nftables"), "{e}");
    assert!(e.contains("web") && e.contains("front"), "{e}");
    assert!(h.fake.borrow().starts.is_empty());
    // A stack without ports or networks needs none.
    let mut plain = H::new(TWO);
    plain.net.borrow_mut().no_nft = true;
    plain.up();
    assert_eq!(plain.starts("a"), 1);
    // And a reload that brings a network in is refused.
    let e = plain.edit(NET).unwrap_err();
    assert!(e.error.contains("need nftables"), "{}", e.error);
}
