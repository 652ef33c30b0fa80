//! Replays every input under `corpus/<target>/` (seeds, and every crash ever found) through
//! its target on stable Rust.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "{} holds no inputs", dir.display());
}

#[test]
fn signature_corpus() {
    replay("signature", herald_fuzz::signature);
}

#[test]
fn formats_corpus() {
    replay("formats", herald_fuzz::formats);
}

#[test]
fn cursor_corpus() {
    replay("cursor", herald_fuzz::cursor);
}

#[test]
fn ws_frame_corpus() {
    replay("ws_frame", herald_fuzz::ws_frame);
}

#[test]
fn jwt_corpus() {
    replay("jwt", herald_fuzz::jwt);
}
