//! The input files `god watch` follows: registry.yaml, the files of topology/ and
//! components.toml. Their edits arrive as file notifications, debounced ([`notifications`]);
//! each tick also compares the files' sizes and times ([`InputFiles::fingerprint`]), so an edit
//! the notifications missed is read at the next tick at the latest.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::mpsc;

use crate::error::Result;
use crate::inputs::topology::TOPOLOGY_DIR;
use crate::inputs::{absolute, locate_registry};
use crate::reconcile::sources::{COMPONENTS_FILE, Sources};

/// How long the files must be quiet after an edit before watch plans (an editor's save is
/// often several writes).
pub const DEBOUNCE: Duration = Duration::from_millis(500);

/// The files a watch follows, as absolute paths.
#[derive(Debug, Clone)]
pub struct InputFiles {
    /// registry.yaml.
    pub registry: PathBuf,
    /// The topology folder (it may not exist).
    pub topology: PathBuf,
    /// components.toml, when there is one.
    pub components: Option<PathBuf>,
}

impl InputFiles {
    /// The files `sources` name, as the commands find them.
    pub fn of(sources: &Sources) -> Result<Self> {
        let registry = absolute(&locate_registry(sources.registry.as_deref())?);
        let topology = match &sources.topology {
            Some(dir) => absolute(dir),
            None => registry
                .parent()
                .unwrap_or(Path::new("/"))
                .join(TOPOLOGY_DIR),
        };
        let components = match &sources.components {
            Some(path) => Some(absolute(path)),
            None => Some(PathBuf::from(COMPONENTS_FILE))
                .filter(|p| p.is_file())
                .map(|p| absolute(&p)),
        };
        Ok(Self {
            registry,
            topology,
            components,
        })
    }

    /// A digest of the files' names, sizes and modification times: it changes when one is
    /// edited, added or removed.
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        let mut files = vec![self.registry.clone()];
        files.extend(self.components.clone());
        if let Ok(entries) = std::fs::read_dir(&self.topology) {
            let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            names.sort();
            files.extend(names);
        }
        for file in files {
            file.hash(&mut hasher);
            if let Ok(meta) = std::fs::metadata(&file) {
                meta.len().hash(&mut hasher);
                meta.modified().ok().hash(&mut hasher);
            }
        }
        hasher.finish()
    }

    /// Whether an edit of `path` concerns the watch.
    fn concerns(&self, path: &Path) -> bool {
        path == self.registry
            || self.components.as_deref() == Some(path)
            || path.starts_with(&self.topology)
    }

    /// The folders to follow: those of the files, and topology/ when it exists.
    fn folders(&self) -> Vec<PathBuf> {
        let mut folders: Vec<PathBuf> = [Some(&self.registry), self.components.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        if self.topology.is_dir() {
            folders.push(self.topology.clone());
        }
        folders.sort();
        folders.dedup();
        folders
    }
}

/// The follower of the files (dropping it stops the notifications) and where they arrive.
pub type Notifications = (Debouncer<RecommendedWatcher>, mpsc::UnboundedReceiver<()>);

/// Follows the files: a message arrives on the receiver once they have been quiet for
/// [`DEBOUNCE`] after an edit. The watching stops when the returned debouncer is dropped.
/// Where the system gives no notifications, the error is returned and the ticks alone notice
/// edits.
pub fn notifications(files: &InputFiles) -> std::result::Result<Notifications, String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let followed = files.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| {
        if let Ok(events) = result
            && events.iter().any(|e| followed.concerns(&e.path))
        {
            let _ = tx.send(());
        }
    })
    .map_err(|e| e.to_string())?;
    for folder in files.folders() {
        debouncer
            .watcher()
            .watch(&folder, RecursiveMode::NonRecursive)
            .map_err(|e| format!("{}: {e}", folder.display()))?;
    }
    Ok((debouncer, rx))
}
