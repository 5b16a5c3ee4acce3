//! `sandbox-ui`'s library side: the history store (users, sessions, conversations,
//! messages in sled). The pages and their wiring come in the binary.
#![forbid(unsafe_code)]

pub mod store;
