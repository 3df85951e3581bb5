//! Sessions in cookies: sealed (`seal.rs`) and split across as many cookies as needed
//! (`chunks.rs`). The login flow and the session store build on these two.

pub mod chunks;
pub mod seal;
