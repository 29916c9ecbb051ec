//! Slack's Web API with Block Kit: `chat.postMessage` when an incident opens, then
//! `chat.update` of that message and a reply in its thread on each change, so a channel
//! gets one message per incident.
//!
//! Within Slack's limits: at most 50 blocks, a header of at most 150 characters, a
//! section of at most 3,000, and a fallback `text` kept under 4,000 (Slack truncates
//! at 40,000 and recommends 4,000).

use serde_json::{Value, json};

use super::{Action, Notice, cut};

/// Most blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// Longest header text.
pub const MAX_HEADER: usize = 150;
/// Longest section text.
pub const MAX_SECTION: usize = 3000;
/// Longest fallback text Tocsin sends.
pub const MAX_TEXT: usize = 4000;

/// Markdown's `**bold**` in Slack's mrkdwn (`*bold*`).
fn mrkdwn(markdown: &str) -> String {
    markdown.replace("**", "*")
}

/// The blocks describing the incident now.
pub fn blocks(notice: &Notice<'_>) -> Vec<Value> {
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": cut(&notice.summary(), MAX_HEADER), "emoji": true },
    })];
    for (name, text) in notice.facts() {
        if name == "Incident" || name == "Trace id" {
            continue;
        }
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": cut(&mrkdwn(&format!("**{name}:**\n{text}")), MAX_SECTION) },
        }));
    }
    // Leave room for the context block.
    blocks.truncate(MAX_BLOCKS - 1);
    let mut context =
        vec![json!({ "type": "mrkdwn", "text": format!("<{}|Open in Tocsin>", notice.link) })];
    if let Some(trace) = &notice.trace_id {
        context.push(json!({ "type": "mrkdwn", "text": format!("trace `{trace}`") }));
    }
    blocks.push(json!({ "type": "context", "elements": context }));
    blocks
}

/// `chat.postMessage` of a new incident to `channel`.
pub fn post(channel: &str, notice: &Notice<'_>) -> Value {
    json!({
        "channel": channel,
        "text": cut(&notice.summary(), MAX_TEXT),
        "blocks": blocks(notice),
        "unfurl_links": false,
    })
}

/// `chat.update` of the incident's message (`channel` is the id Slack answered with).
pub fn update(channel: &str, ts: &str, notice: &Notice<'_>) -> Value {
    json!({
        "channel": channel,
        "ts": ts,
        "text": cut(&notice.summary(), MAX_TEXT),
        "blocks": blocks(notice),
    })
}

/// `chat.postMessage` in the incident's thread saying what changed.
pub fn reply(channel: &str, ts: &str, notice: &Notice<'_>) -> Value {
    let change = notice
        .incident
        .timeline
        .last()
        .map(|entry| format!("{}: {}", entry.kind, entry.detail))
        .unwrap_or_default();
    let text = match notice.action {
        Action::Resolve => format!("Resolved. {change}"),
        _ => change,
    };
    json!({
        "channel": channel,
        "thread_ts": ts,
        "text": cut(&text, MAX_TEXT),
    })
}
