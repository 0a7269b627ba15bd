//! An in-memory [`NetOps`] for the supervisor's unit tests: links,
//! attachments and rule tables as plain data the test reads and sets.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::rc::Rc;

use super::Subnet;
use super::linux::Attach;
use super::nft::{Bridge, Publish};
use super::ops::NetOps;

#[derive(Debug, Default)]
pub struct FakeNetState {
    /// Links that exist: bridges made, veth host ends attached.
    pub links: BTreeSet<String>,
    /// Every attachment: (pid, bridge, address).
    pub attached: Vec<(i32, String, IpAddr)>,
    /// The host's routes.
    pub routes: Vec<(String, Subnet)>,
    /// Ports other sockets of the host hold.
    pub ports_in_use: BTreeSet<(&'static str, u16)>,
    /// The stack's table as last applied: what it publishes.
    pub published: Option<Vec<Publish>>,
    pub bridges_in_rules: Vec<Bridge>,
    pub forwarding: bool,
    /// `nft` is not there.
    pub no_nft: bool,
    /// Name servers listen on loopback (any port) instead of failing to.
    pub name_servers: bool,
    /// The host's resolvers.
    pub resolvers: Vec<std::net::SocketAddr>,
    /// Host ports held so far (sockets handed out).
    pub held: u64,
}

pub type FakeNetHandle = Rc<RefCell<FakeNetState>>;

#[derive(Debug)]
pub struct FakeNet(pub FakeNetHandle);

impl FakeNet {
    pub fn new() -> (FakeNet, FakeNetHandle) {
        let state = Rc::new(RefCell::new(FakeNetState::default()));
        (FakeNet(state.clone()), state)
    }
}

impl NetOps for FakeNet {
    fn routes(&self) -> Vec<(String, Subnet)> {
        self.0.borrow().routes.clone()
    }

    fn ensure_bridge(&mut self, name: &str, _gateway: IpAddr, _prefix: u8) -> Result<(), String> {
        self.0.borrow_mut().links.insert(name.to_string());
        Ok(())
    }

    fn delete_link(&mut self, name: &str) -> Result<(), String> {
        self.0.borrow_mut().links.remove(name);
        Ok(())
    }

    fn link_exists(&self, name: &str) -> bool {
        self.0.borrow().links.contains(name)
    }

    fn attach(&mut self, a: &Attach<'_>) -> Result<(), String> {
        let mut s = self.0.borrow_mut();
        if !s.links.contains(a.bridge) {
            return Err(format!("no bridge {}", a.bridge));
        }
        s.links.insert(a.host_if.to_string());
        s.attached.push((a.pid, a.bridge.to_string(), a.addr));
        Ok(())
    }

    fn ports_in_use(&self) -> BTreeSet<(&'static str, u16)> {
        self.0.borrow().ports_in_use.clone()
    }

    fn rules_available(&self) -> Result<(), String> {
        if self.0.borrow().no_nft {
            Err("nft was not found".into())
        } else {
            Ok(())
        }
    }

    fn enable_forwarding(&mut self) -> Result<bool, String> {
        let mut s = self.0.borrow_mut();
        let was = s.forwarding;
        s.forwarding = true;
        Ok(!was)
    }

    fn apply_rules(
        &mut self,
        _stack: &str,
        publish: &[Publish],
        bridges: &[Bridge],
    ) -> Result<(), String> {
        let mut s = self.0.borrow_mut();
        s.published = Some(publish.to_vec());
        s.bridges_in_rules = bridges.to_vec();
        Ok(())
    }

    fn remove_rules(&mut self, _stack: &str) -> Result<(), String> {
        let mut s = self.0.borrow_mut();
        s.published = None;
        s.bridges_in_rules.clear();
        Ok(())
    }

    fn name_server(&mut self, _gateway: IpAddr) -> std::io::Result<std::net::UdpSocket> {
        if self.0.borrow().name_servers {
            super::ops::udp_socket((std::net::Ipv4Addr::LOCALHOST, 0).into())
        } else {
            Err(std::io::ErrorKind::AddrInUse.into())
        }
    }

    fn upstream_socket(&mut self, _v6: bool) -> std::io::Result<std::net::UdpSocket> {
        super::ops::udp_socket((std::net::Ipv4Addr::LOCALHOST, 0).into())
    }

    fn resolvers(&self) -> Vec<std::net::SocketAddr> {
        self.0.borrow().resolvers.clone()
    }

    fn hold_port(
        &mut self,
        proto: &str,
        _ip: Option<IpAddr>,
        port: u16,
    ) -> std::io::Result<std::os::fd::OwnedFd> {
        let mut s = self.0.borrow_mut();
        if s.ports_in_use
            .iter()
            .any(|(p, n)| *p == proto && *n == port)
        {
            return Err(std::io::ErrorKind::AddrInUse.into());
        }
        s.held += 1;
        Ok(std::fs::File::open("/dev/null")?.into())
    }
}

/// The addresses handed out so far, by bridge.
pub fn addresses(s: &FakeNetState) -> BTreeMap<String, Vec<IpAddr>> {
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for (_, b, ip) in &s.attached {
        out.entry(b.clone()).or_default().push(*ip);
    }
    out
}
