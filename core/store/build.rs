//! `sqlx::migrate!` embeds the migration files at compile time, and Cargo does not know
//! about them: without this, a migration added to an already built tree would be left
//! out of the next build.

#![allow(clippy::print_stdout, reason = "build scripts talk to Cargo on stdout")]

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
