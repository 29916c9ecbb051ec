//! Markdown from teams and plugins (runbooks, collector sections) as safe HTML: rendered
//! by pulldown-cmark, then sanitised by ammonia, which keeps formatting and links and
//! drops scripts, event handlers, `javascript:` URLs and anything else that could run.

use maud::{Markup, PreEscaped};
use pulldown_cmark::{Options, Parser, html};

/// `source` rendered and sanitised.
pub(crate) fn render(source: &str) -> Markup {
    let mut out = String::with_capacity(source.len() * 2);
    html::push_html(&mut out, Parser::new_ext(source, Options::ENABLE_TABLES));
    PreEscaped(ammonia::clean(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_survives_and_scripts_do_not() {
        let html = render(
            "# Runbook\n\n**Restart** the [pod](https://example.com/x).\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n[click](javascript:alert(3))",
        )
        .into_string();
        assert!(html.contains("<h1>Runbook</h1>"), "{html}");
        assert!(html.contains("<strong>Restart</strong>"), "{html}");
        assert!(html.contains("href=\"https://example.com/x\""), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
    }
}
