//! Problems found in input files, rendered like a compiler's: `file:line:col: message`, the
//! offending line, a caret under the spot, and a hint.

use std::path::PathBuf;

/// An input file's path and text, kept together so that every problem can quote its line.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it (or as it was found), used in messages.
    pub path: PathBuf,
    /// The whole text of the file.
    pub text: String,
}

/// How bad a problem is: errors make `god validate` fail, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The input cannot be used as it is.
    Error,
    /// The input works, but probably not as intended.
    Warning,
}

/// One problem at one place of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
    /// The text of the offending line, quoted under the message.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// An error at a position of a file whose text is known.
    pub fn error(file: &SourceFile, line: usize, col: usize, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            file: file.path.clone(),
            line,
            col,
            message: message.into(),
            hint: None,
            source_line: file
                .text
                .lines()
                .nth(line.saturating_sub(1))
                .map(str::to_string),
        }
    }

    /// The same problem as a warning.
    pub fn warning(file: &SourceFile, line: usize, col: usize, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(file, line, col, message)
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Whether this problem makes the input unusable.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The one-line form, `file:line:col: message` (warnings say so).
    pub fn headline(&self) -> String {
        let prefix = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        format!(
            "{}:{}:{}: {prefix}{}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }

    /// The full form: headline, the offending line with a caret, and the hint.
    pub fn render(&self) -> String {
        let mut out = self.headline();
        if let Some(line) = &self.source_line {
            let gutter = self.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret_pad: String = line
                .chars()
                .take(self.col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("\n {gutter} | {line}\n {pad} | {caret_pad}^"));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("\n  hint: {hint}"));
        }
        out
    }
}
