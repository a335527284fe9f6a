//! `chronote server`: run the server, manage tokens. (Owned by the server work of issue 3.)

use anyhow::{Result, bail};
use clap::Args;

#[derive(Args)]
pub struct ServerArgs {}

pub fn run(_args: ServerArgs) -> Result<()> {
    bail!("`chronote server` is not built yet (issue 3)")
}
