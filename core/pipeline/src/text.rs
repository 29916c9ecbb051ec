//! Wording shared by the stages' history reasons and timeline entries.

/// `90000` → `1m30s`.
pub(crate) fn human(ms: i64) -> String {
    let mut s = ms / 1000;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= size {
            out.push_str(&format!("{}{unit}", s / size));
            s %= size;
        }
    }
    if out.is_empty() {
        format!("{ms}ms")
    } else {
        out
    }
}
