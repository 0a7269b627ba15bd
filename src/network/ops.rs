//! The seam between the supervisor and the host's network: every bridge,
//! veth, route question, port question and nftables table `up` touches
//! goes through [`NetOps`]. [`LinuxNet`] does it for real (netlink,
//! `/proc`, `nft`); the supervisor's unit tests use an in-memory fake.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::Subnet;
use super::linux::Attach;
use super::nft::{Bridge, Publish};

pub trait NetOps {
    /// The host's IPv4 routes, with their interface.
    fn routes(&self) -> Vec<(String, Subnet)>;
    /// Makes the bridge (or keeps it) with `gateway`/`prefix` on it, up.
    fn ensure_bridge(&mut self, name: &str, gateway: IpAddr, prefix: u8) -> Result<(), String>;
    fn delete_link(&mut self, name: &str) -> Result<(), String>;
    fn link_exists(&self, name: &str) -> bool;
    /// A container's veth pair on a bridge, its address and route inside.
    fn attach(&mut self, a: &Attach<'_>) -> Result<(), String>;
    /// `(proto, port)` held by sockets of this host.
    fn ports_in_use(&self) -> BTreeSet<(&'static str, u16)>;
    /// Whether the stack's rules can be applied here (`nft` is there); why
    /// not, with what to install.
    fn rules_available(&self) -> Result<(), String>;
    /// Turns IPv4 forwarding on; true when it was off.
    fn enable_forwarding(&mut self) -> Result<bool, String>;
    /// Replaces the stack's nftables table (removes it when both are empty).
    fn apply_rules(
        &mut self,
        stack: &str,
        publish: &[Publish],
        bridges: &[Bridge],
    ) -> Result<(), String>;
    fn remove_rules(&mut self, stack: &str) -> Result<(), String>;
}

/// [`NetOps`] on this host.
#[derive(Debug, Default)]
pub struct LinuxNet;

impl NetOps for LinuxNet {
    fn routes(&self) -> Vec<(String, Subnet)> {
        super::linux::ipv4_routes()
    }

    fn ensure_bridge(&mut self, name: &str, gateway: IpAddr, prefix: u8) -> Result<(), String> {
        super::linux::ensure_bridge(name, gateway, prefix).map_err(|e| e.to_string())
    }

    fn delete_link(&mut self, name: &str) -> Result<(), String> {
        super::linux::delete_link(name).map_err(|e| e.to_string())
    }

    fn link_exists(&self, name: &str) -> bool {
        super::linux::link_exists(name)
    }

    fn attach(&mut self, a: &Attach<'_>) -> Result<(), String> {
        super::linux::attach(a)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn ports_in_use(&self) -> BTreeSet<(&'static str, u16)> {
        super::linux::ports_in_use()
    }

    fn rules_available(&self) -> Result<(), String> {
        let found = std::env::var_os("PATH").is_some_and(|p| {
            std::env::split_paths(&p).any(|d| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(d.join("nft"))
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
        });
        if found {
            Ok(())
        } else {
            Err("the program nft was not found in PATH (Debian: apt-get install nftables)".into())
        }
    }

    fn enable_forwarding(&mut self) -> Result<bool, String> {
        super::nft::enable_forwarding()
    }

    fn apply_rules(
        &mut self,
        stack: &str,
        publish: &[Publish],
        bridges: &[Bridge],
    ) -> Result<(), String> {
        super::nft::apply(stack, publish, bridges)
    }

    fn remove_rules(&mut self, stack: &str) -> Result<(), String> {
        super::nft::remove(stack)
    }
}
