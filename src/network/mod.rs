//! Networks: bridges, veth pairs, addresses, name-based discovery. This part
//! is pure (no OS calls): address management, interface names, and the
//! `/etc/hosts` and `/etc/resolv.conf` each container gets. Its own types;
//! nothing from the stack file.

pub mod hosts;
pub mod ipam;
pub mod linux;
pub mod names;
pub mod netlink;
pub mod nft;

pub use ipam::{IpamError, Subnet};
