//! Streaming `prism generate`: each Application is printed as soon as a rendering
//! thread has it, into a spool (memory, spilling to an unlinked temporary file past
//! [`SPILL_BYTES`]), keeping only its name and where its text is. When every
//! ApplicationSet rendered and every name is unique, the index is sorted and the texts
//! copied to stdout in that order.
//!
//! Memory then grows with the parameter sets and the name index only, not with the
//! output; and, as before, nothing is written unless everything rendered.

use crate::input::SpecDoc;
use crate::output::Format;
use crate::CliError;
use prism_engine::{RenderOptions, Sources};
use serde_json::Value;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::Mutex;

/// Bytes a spool keeps in memory before it moves them to its file.
pub const SPILL_BYTES: usize = 1 << 20;

/// Bytes read back from a spool's file at a time.
const READ_BYTES: usize = 1 << 20;

/// Printed Applications, in the order one thread rendered them.
#[derive(Default)]
struct Spool {
    /// Text not yet moved to the file.
    memory: Vec<u8>,
    /// The spill file, once one was needed (unlinked: the OS removes it with the process).
    file: Option<std::fs::File>,
    /// Bytes in the file.
    spilled: u64,
    /// Whether making a spill file failed (then everything stays in memory).
    no_file: bool,
}

impl Spool {
    /// Appends `text`; its offset in the spool.
    fn append(&mut self, text: &[u8]) -> Result<u64, String> {
        if !self.no_file && self.memory.len() + text.len() > SPILL_BYTES {
            self.spill()?;
        }
        let at = self.spilled + self.memory.len() as u64;
        self.memory.extend_from_slice(text);
        Ok(at)
    }

    fn spill(&mut self) -> Result<(), String> {
        if self.file.is_none() {
            match tempfile::tempfile() {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    tracing::debug!(error = %e, "no spill file; keeping the output in memory");
                    self.no_file = true;
                    return Ok(());
                }
            }
        }
        if let Some(f) = &mut self.file {
            f.write_all(&self.memory)
                .map_err(|e| format!("writing the output spool: {e}"))?;
            self.spilled += self.memory.len() as u64;
            self.memory.clear();
        }
        Ok(())
    }
}

/// Reads spooled texts back, a window of the file at a time.
struct Reader<'a> {
    spool: &'a mut Spool,
    window: Vec<u8>,
    window_at: u64,
}

impl Reader<'_> {
    fn get(&mut self, at: u64, len: usize) -> Result<&[u8], String> {
        let spilled = self.spool.spilled;
        if at >= spilled {
            let from = (at - spilled) as usize;
            return Ok(&self.spool.memory[from..from + len]);
        }
        let end = at + len as u64;
        let inside = at >= self.window_at && end <= self.window_at + self.window.len() as u64;
        if !inside {
            let Some(f) = &mut self.spool.file else {
                return Err("the output spool lost its file".into());
            };
            let size = (len.max(READ_BYTES) as u64).min(spilled - at) as usize;
            self.window.resize(size, 0);
            f.seek(SeekFrom::Start(at))
                .and_then(|_| f.read_exact(&mut self.window))
                .map_err(|e| format!("reading the output spool: {e}"))?;
            self.window_at = at;
        }
        let from = (at - self.window_at) as usize;
        Ok(&self.window[from..from + len])
    }
}

/// Where one Application's text is: its spool, offset and length.
type Place = (u32, u64, u32);

/// One rendering thread's spool, with scratch buffers.
struct Part {
    id: u32,
    spool: Spool,
    buf: Vec<u8>,
    text: String,
}

/// Renders every spec and writes its Applications to `out` as `format` (YAML, JSON or
/// names), sorted by name then ApplicationSet, exactly as [`crate::output::format`]
/// would; warnings go to stderr.
pub fn generate(
    specs: &[SpecDoc],
    sources: &dyn Sources,
    options: &RenderOptions,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    // Spools outlive a set's render: the next set's threads take them up again.
    let pool: Mutex<Vec<Part>> = Mutex::new(Vec::new());
    let made = std::sync::atomic::AtomicU32::new(0);
    let start = || {
        pool.lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_else(|| Part {
                id: made.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                spool: Spool::default(),
                buf: Vec::with_capacity(4096),
                text: String::new(),
            })
    };
    let each = |part: &mut Part, name: &str, manifest: &Value| -> Result<Place, String> {
        part.buf.clear();
        print_item(&mut part.buf, &mut part.text, format, name, manifest);
        let at = part.spool.append(&part.buf)?;
        Ok((part.id, at, part.buf.len() as u32))
    };
    let finish = |part: Part| {
        if let Ok(mut p) = pool.lock() {
            p.push(part);
        }
    };
    let started = std::time::Instant::now();
    let (expansions, records) =
        crate::pipeline::render_all(specs, sources, options, start, each, finish)?;
    let rendered = started.elapsed();
    let mut parts = pool
        .into_inner()
        .map_err(|_| CliError::Failed("output spool: lock poisoned".into()))?;
    parts.sort_unstable_by_key(|p| p.id);
    let mut readers: Vec<Reader> = parts
        .iter_mut()
        .map(|part| Reader {
            spool: &mut part.spool,
            window: Vec::new(),
            window_at: 0,
        })
        .collect();
    let write = |out: &mut dyn Write, bytes: &[u8]| {
        out.write_all(bytes)
            .map_err(|e| CliError::Failed(format!("writing output: {e}")))
    };
    let json = format == Format::Json;
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    if json {
        let head: &[u8] = if records.is_empty() {
            b"{\n  \"apiVersion\": \"v1\",\n  \"items\": [],\n  \"kind\": \"List\"\n}\n"
        } else {
            b"{\n  \"apiVersion\": \"v1\",\n  \"items\": [\n"
        };
        write(&mut out, head)?;
    }
    for (n, r) in records.iter().enumerate() {
        let (spool, at, len) = r.item;
        let text = readers[spool as usize]
            .get(at, len as usize)
            .map_err(|m| CliError::Failed(format!("output spool: {m}")))?;
        if json && n > 0 {
            write(&mut out, b",\n")?;
        }
        write(&mut out, text)?;
    }
    if json && !records.is_empty() {
        write(&mut out, b"\n  ],\n  \"kind\": \"List\"\n}\n")?;
    }
    out.flush()
        .map_err(|e| CliError::Failed(format!("writing output: {e}")))?;
    tracing::debug!(applications = records.len(), written = ?started.elapsed() - rendered, "printed");
    // The process ends right after printing: freeing a fleet's worth of parameter sets
    // one by one would cost more than rendering them.
    std::mem::forget(expansions);
    std::mem::forget(records);
    Ok(())
}

/// One Application as `format` prints it in a stream: a YAML document with its `---`,
/// a JSON List item (indented as in the List), or its name on a line.
fn print_item(buf: &mut Vec<u8>, text: &mut String, format: Format, name: &str, app: &Value) {
    match format {
        Format::Names => {
            buf.extend_from_slice(name.as_bytes());
            buf.push(b'\n');
        }
        Format::Json => {
            let pretty = serde_json::to_string_pretty(app).unwrap_or_default();
            // JSON strings hold no raw newline, so every line break is the printer's.
            for (i, line) in pretty.split('\n').enumerate() {
                if i > 0 {
                    buf.push(b'\n');
                }
                buf.extend_from_slice(b"    ");
                buf.extend_from_slice(line.as_bytes());
            }
        }
        _ => {
            text.clear();
            text.push_str("---\n");
            crate::yaml::write_document(text, app);
            buf.extend_from_slice(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_engine::sources::memory::MemorySources;
    use serde_json::json;

    /// A spec of `n` list elements, named `{prefix}-{i}` with the elements in reverse,
    /// so the sorted output differs from the generators' order.
    fn spec(name: &str, namespace: &str, n: usize, prefix: &str) -> SpecDoc {
        let elements: Vec<Value> = (0..n)
            .rev()
            .map(|i| json!({"i": format!("{i:04}"), "note": "a: b # not a comment"}))
            .collect();
        let raw = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"generators": [{"list": {"elements": elements}}],
                "template": {"metadata": {"name": format!("{prefix}-{{{{i}}}}"),
                                          "annotations": {"note": "{{note}}"}},
                    "spec": {"project": "default", "source": {"repoURL": "https://g/r.git", "path": "{{i}}"},
                             "destination": {"server": "https://k", "namespace": "{{i}}"}}}}});
        SpecDoc {
            file: format!("{name}.yaml"),
            appset: prism_engine::ApplicationSet::from_value(&raw, "argocd").expect("spec"),
            raw,
            text: String::new(),
            first_line: 1,
        }
    }

    fn streamed(specs: &[SpecDoc], format: Format, threads: usize) -> Result<String, String> {
        let options = RenderOptions {
            threads,
            ..RenderOptions::default()
        };
        let mut out = Vec::new();
        generate(specs, &MemorySources::new(), &options, format, &mut out)
            .map_err(|e| e.to_string())?;
        String::from_utf8(out).map_err(|e| e.to_string())
    }

    fn collected(specs: &[SpecDoc], format: Format) -> Result<String, String> {
        let sources = MemorySources::new();
        let options = RenderOptions::default();
        let results =
            crate::pipeline::render_specs(specs, &sources, &options).map_err(|e| e.to_string())?;
        let all = crate::pipeline::collect(specs, &results).map_err(|e| e.to_string())?;
        Ok(crate::output::format(&all, format, false))
    }

    /// Streaming prints byte for byte what collecting everything first printed, in every
    /// streamed format, on one thread or several, for several sets sorted together.
    #[test]
    fn streamed_output_equals_collected_output() {
        let specs = [
            spec("b-set", "argocd", 300, "app"),
            spec("a-set", "argocd", 7, "other"),
            spec("c-set", "team", 130, "app"),
        ];
        for format in [Format::Yaml, Format::Json, Format::Names] {
            let want = collected(&specs, format).expect("collected");
            for threads in [1, 2, 3] {
                assert_eq!(
                    streamed(&specs, format, threads).expect("streamed"),
                    want,
                    "{format:?} on {threads} threads"
                );
            }
        }
        let empty = [spec("none", "argocd", 0, "x")];
        for format in [Format::Yaml, Format::Json, Format::Names] {
            assert_eq!(
                streamed(&empty, format, 2).expect("streamed"),
                collected(&empty, format).expect("collected")
            );
        }
    }

    /// The same errors as collecting, whatever the thread count: a clash inside a set
    /// names the first two parameter sets, a clash across sets both sets; and nothing
    /// is written.
    #[test]
    fn name_clashes_fail_as_before_and_write_nothing() {
        let mut clash = spec("dup", "argocd", 200, "app");
        let mut raw = clash.raw.clone();
        raw["spec"]["template"]["metadata"]["name"] = json!("same");
        clash.appset = prism_engine::ApplicationSet::from_value(&raw, "argocd").expect("spec");
        let inside = [clash];
        let across = [
            spec("one", "argocd", 100, "app"),
            spec("two", "argocd", 100, "app"),
        ];
        for specs in [&inside[..], &across[..]] {
            let want = collected(specs, Format::Yaml).expect_err("a clash");
            for threads in [1, 2] {
                assert_eq!(streamed(specs, Format::Yaml, threads), Err(want.clone()));
                let options = RenderOptions {
                    threads,
                    ..RenderOptions::default()
                };
                let mut out = Vec::new();
                let sources = MemorySources::new();
                assert!(generate(specs, &sources, &options, Format::Yaml, &mut out).is_err());
                assert!(out.is_empty(), "wrote {} bytes before failing", out.len());
            }
        }
    }

    #[test]
    fn spool_reads_back_across_memory_and_file() {
        let mut spool = Spool::default();
        let mut at = Vec::new();
        // Enough to spill several times: every text comes back whole.
        for i in 0..3000 {
            let text = format!("doc {i} {}\n", "x".repeat(i % 1500));
            at.push((spool.append(text.as_bytes()).expect("append"), text));
        }
        assert!(spool.spilled > 0, "nothing spilled");
        let mut reader = Reader {
            spool: &mut spool,
            window: Vec::new(),
            window_at: 0,
        };
        // Backwards, so the window moves on every read.
        for (offset, text) in at.iter().rev() {
            assert_eq!(
                reader.get(*offset, text.len()).expect("get"),
                text.as_bytes()
            );
        }
    }
}
