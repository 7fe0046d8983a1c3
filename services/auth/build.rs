//! The migrations are compiled into the crate (`sqlx::migrate!`); rebuild when they change.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
