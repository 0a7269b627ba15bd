//! Networks: bridges, veth pairs, addresses, name-based discovery. This part
//! is pure (no OS calls): address management, interface names, the
//! `/etc/hosts` and `/etc/resolv.conf` each container gets, and the name
//! server's messages. Its own types;
//! nothing from the stack file.

pub mod dns;
pub mod dns_relay;
#[cfg(test)]
pub mod fake;
pub mod hosts;
pub mod ipam;
pub mod linux;
pub mod names;
pub mod netlink;
pub mod nft;
pub mod ops;

pub use ipam::{IpamError, Subnet};
pub use linux::Attach;
pub use nft::{Bridge, Publish, ruleset};
pub use ops::{LinuxNet, NetOps};
