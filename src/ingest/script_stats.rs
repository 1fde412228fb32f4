//! Script-block statistics and fingerprints, computed as the Elastic Windows integration's
//! ingest pipeline computes them for `powershell.file.*`.
//!
//! The facts (read from the integration's `powershell_operational` ingest pipeline, the
//! version that adds the statistics): the text is trimmed, a `script_block_hash` is the
//! fingerprint processor's SHA-1 (a zero delimiter byte, then the UTF-8 text with every
//! `\s` removed) in Base64; the Authenticode block from `# SIG # Begin signature block` on is
//! cut before the statistics, which are skipped for an empty remainder and for fragments
//! whose second line is a 64-character Base64 signature line; the rest is NFC-normalised and
//! measured over UTF-16 code units: length, distinct symbols, Shannon entropy in bits and the
//! standard deviation of the per-symbol surprisal (a running, order-dependent update over
//! symbols in order of first appearance).

use base64::Engine;
use sha1::{Digest, Sha1};
use unicode_normalization::UnicodeNormalization;

/// The statistics the pipeline stores under `powershell.file.script_block_*`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptStats {
    pub length: i64,
    pub unique_symbols: i64,
    pub entropy_bits: f64,
    pub entropy_normalized: f64,
    pub surprisal_stdev: f64,
}

const SIGNATURE_START: &str = "# SIG # Begin signature block";
const SIGNATURE_END: &str = "# SIG # End signature block";

/// Java's `String.trim()`: strips every char up to U+0020 from both ends.
pub fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// `script_block_hash`: Base64 of SHA-1 over a zero byte followed by the text with all
/// ASCII whitespace (Java regex `\s`) removed.
pub fn script_block_hash(text: &str) -> String {
    let mut hasher = Sha1::new();
    // The non-space bytes are gathered into a block before hashing: one update per word
    // would cost more than the hashing itself. Every byte is written and the cursor moves
    // only past non-space bytes: no unpredictable branch on where the spaces fall.
    let mut block = [0u8; 4096];
    let mut filled = 1; // block[0] = 0, the fingerprint processor's delimiter
    for &b in text.as_bytes() {
        block[filled] = b;
        filled += usize::from(!JAVA_SPACE[usize::from(b)]);
        if filled == block.len() {
            hasher.update(block);
            filled = 0;
        }
    }
    hasher.update(&block[..filled]);
    base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
}

/// Java regex `\s`: space, TAB, LF, VT, FF, CR.
const JAVA_SPACE: [bool; 256] = {
    let mut t = [false; 256];
    t[b' ' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\n' as usize] = true;
    t[0x0b] = true;
    t[0x0c] = true;
    t[b'\r' as usize] = true;
    t
};

/// The text before the Authenticode signature block (the whole text when there is none).
pub fn without_signature(text: &str) -> &str {
    match memchr::memmem::find(text.as_bytes(), SIGNATURE_START.as_bytes()) {
        // The pipeline's `(?s)# SIG # Begin signature block.+` needs at least one character
        // after the marker.
        Some(at) if text.len() > at + SIGNATURE_START.len() => &text[..at],
        _ => text,
    }
}

/// `script_block_signature`: the Base64 lines between the signature markers, joined with
/// the `\n# ` line prefixes removed.
pub fn signature(text: &str) -> Option<String> {
    let start =
        memchr::memmem::find(text.as_bytes(), SIGNATURE_START.as_bytes())? + SIGNATURE_START.len();
    let end = start + text[start..].find(SIGNATURE_END)?;
    let body = text[start..end].replace("\r\n", "\n");
    let joined = body.replace("\n# ", "");
    (!joined.is_empty()).then_some(joined)
}

/// Whether the fragment is signature lines only: its second line is `#` plus an optional
/// space then exactly 64 Base64 characters. `script` is UTF-16 units (or bytes of ASCII text).
fn is_signature_fragment<T: Copy + Into<u16>>(script: &[T]) -> bool {
    let newline = |c: &T| (*c).into() == u16::from(b'\n');
    let Some(first_end) = script.iter().position(newline) else {
        return false;
    };
    if first_end == 0 {
        return false;
    }
    let start = first_end + 1;
    if start >= script.len() {
        return false;
    }
    let unit = |i: usize| -> u16 { script[i].into() };
    let mut end = script[start..]
        .iter()
        .position(newline)
        .map_or(script.len(), |p| start + p);
    if end > start && unit(end - 1) == u16::from(b'\r') {
        end -= 1;
    }
    if start >= end || unit(start) != u16::from(b'#') {
        return false;
    }
    let mut content = start + 1;
    if content < end && unit(content) == u16::from(b' ') {
        content += 1;
    }
    end - content == 64
        && (content..end).all(|i| {
            let c = unit(i);
            c < 128 && {
                let b = c as u8;
                b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
            }
        })
}

/// The statistics for a (trimmed) script block text, or `None` where the pipeline sets none.
pub fn script_stats(text: &str) -> Option<ScriptStats> {
    let script = without_signature(text);
    if script.is_empty() {
        return None;
    }
    // ASCII text is its own NFC form and its bytes are its UTF-16 units: no copy needed.
    if script.is_ascii() {
        return stats_of_units(script.as_bytes());
    }
    let units: Vec<u16> = script.encode_utf16().collect();
    if is_signature_fragment(&units) {
        return None;
    }
    if unicode_normalization::is_nfc(script) {
        stats_of_units(&units)
    } else {
        let normalized: Vec<u16> = script.nfc().collect::<String>().encode_utf16().collect();
        stats_of_units(&normalized)
    }
}

fn stats_of_units<T: Copy + Into<u16>>(units: &[T]) -> Option<ScriptStats> {
    if is_signature_fragment(units) {
        return None;
    }
    let length = units.len();
    if length == 0 {
        return None;
    }
    // Counts per UTF-16 unit in order of first appearance (the order the running update
    // uses); ASCII in a table, everything else in a map.
    let mut ascii = [u32::MAX; 128];
    let mut other: std::collections::HashMap<u16, usize> = std::collections::HashMap::new();
    let mut seen: Vec<(u16, u32)> = Vec::new();
    for &unit in units {
        let c: u16 = unit.into();
        let slot = if c < 128 {
            &mut ascii[c as usize]
        } else {
            let next = seen.len();
            let idx = *other.entry(c).or_insert(next);
            if idx == next {
                seen.push((c, 0));
            }
            seen[idx].1 += 1;
            continue;
        };
        if *slot == u32::MAX {
            *slot = seen.len() as u32;
            seen.push((c, 0));
        }
        seen[*slot as usize].1 += 1;
    }
    let inv_log2 = 1.0 / 2f64.ln();
    let (mut entropy, mut surprisal_var, mut p_sum) = (0.0f64, 0.0f64, 0.0f64);
    for &(_, count) in &seen {
        let p = f64::from(count) / length as f64;
        let l2p = p.ln() * inv_log2;
        p_sum += p;
        let previous = entropy;
        entropy = previous + (p / p_sum) * (l2p - previous);
        surprisal_var += p * (l2p - previous) * (l2p - entropy);
    }
    let surprisal_stdev = surprisal_var.max(0.0).sqrt();
    let entropy_bits = if entropy == 0.0 { 0.0 } else { -entropy };
    let entropy_normalized = if length > 1 {
        let max_entropy = (length as f64).ln() * inv_log2;
        (entropy_bits / max_entropy).clamp(0.0, 1.0)
    } else {
        0.0
    };
    Some(ScriptStats {
        length: length as i64,
        unique_symbols: seen.len() as i64,
        entropy_bits,
        entropy_normalized,
        surprisal_stdev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_whitespace_and_prefixes_a_zero_byte() {
        assert_eq!(script_block_hash("a b\nc"), script_block_hash("abc"));
        assert_ne!(script_block_hash("abc"), script_block_hash("abd"));
    }

    #[test]
    fn uniform_text_has_zero_entropy() {
        let s = script_stats("aaaa").expect("stats");
        assert_eq!(s.length, 4);
        assert_eq!(s.unique_symbols, 1);
        assert_eq!(s.entropy_bits, 0.0);
        assert_eq!(s.surprisal_stdev, 0.0);
    }

    #[test]
    fn two_equiprobable_symbols_give_one_bit() {
        let s = script_stats("abab").expect("stats");
        assert!((s.entropy_bits - 1.0).abs() < 1e-12);
        assert!(s.surprisal_stdev.abs() < 1e-12);
        assert!((s.entropy_normalized - 0.5).abs() < 1e-12);
    }

    #[test]
    fn signature_only_text_has_no_stats() {
        let text = format!("{SIGNATURE_START}\n# {}\n{SIGNATURE_END}", "A".repeat(64));
        assert_eq!(script_stats(&text), None);
        let fragment = format!("# {}\n# {}\n", "B".repeat(64), "A".repeat(64));
        assert_eq!(script_stats(&fragment), None);
    }

    #[test]
    fn signature_lines_are_joined() {
        let text = format!("x\n{SIGNATURE_START}\n# AAA\n# BBB\n{SIGNATURE_END}");
        assert_eq!(signature(&text).as_deref(), Some("AAABBB\n"));
        assert_eq!(without_signature(&text), "x\n");
    }

    #[test]
    fn ascii_and_utf16_paths_agree() {
        // The same symbol distribution once as ASCII and once with one symbol outside it.
        let ascii = script_stats("aab\r\nxyzaab").expect("stats");
        let wide = script_stats("\u{e9}\u{e9}b\r\nxyz\u{e9}\u{e9}b").expect("stats");
        assert_eq!(ascii, wide);
        let fragment = format!("# {}\n# {}\n", "B".repeat(64), "A".repeat(64));
        assert_eq!(script_stats(&format!("\u{e9}{fragment}")), None);
    }

    #[test]
    fn hash_blocks_longer_than_the_buffer() {
        let long = "ab cd\n".repeat(3000);
        assert_eq!(
            script_block_hash(&long),
            script_block_hash(&long.replace(' ', ""))
        );
        let joined = "abcd".repeat(3000);
        assert_eq!(script_block_hash(&long), script_block_hash(&joined));
    }

    #[test]
    fn length_counts_utf16_units() {
        let s = script_stats("a\u{1F600}").expect("stats");
        assert_eq!(s.length, 3);
    }
}
