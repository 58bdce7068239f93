//! The digest of a local build context: it is part of the image's tag, so editing the context
//! rebuilds the image and recreates the container.

use std::path::{Path, PathBuf};

/// A digest of every file of a build context (paths and contents), so that a change to the
/// context changes the image tag, and so the container.
pub fn context_digest(dir: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for file in files {
        hasher.update(
            file.strip_prefix(dir)
                .unwrap_or(&file)
                .to_string_lossy()
                .as_bytes(),
        );
        hasher.update([0]);
        hasher.update(std::fs::read(&file)?);
        hasher.update([0]);
    }
    Ok(hex::encode(&hasher.finalize()[..8]))
}
