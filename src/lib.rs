//! rkstack: a declarative container supervisor for appliances.
//!
//! Data flows one way: stack file → [`config`] → [`plan`] → supervisor →
//! sandbox / network / image. See `architecture.md` in the design folder.

pub mod api;
pub mod bounded;
pub mod build;
pub mod config;
pub mod container;
pub mod control;
pub mod host;
pub mod image;
pub mod network;
pub mod plan;
pub mod sandbox;
pub mod supervisor;
pub mod time;
