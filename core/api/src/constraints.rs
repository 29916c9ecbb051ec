//! What the OpenAPI document says about request values beyond what the derives write:
//! label keys and values, monitor names, durations, templates, the shapes of filters,
//! collectors and matchers, and the vendor payloads the webhooks read. Each rule here is
//! one the handlers and the model enforce; a client (or a tool such as schemathesis)
//! generating values from the document gets them accepted.
//!
//! The types of `tocsin_model::event` and the Alertmanager adapter are written in other
//! crates, and some of these rules need JSON Schema keywords utoipa's object model cannot
//! hold (`const`, `not`, `contains`, `propertyNames`), so they are set on the served
//! JSON. Rules no schema can state (an end after its start, a regex that compiles, a
//! template naming a label the event has, the share guard, names of configured
//! notifiers) stay with the handlers: `tests/e2e/schemathesis.toml` lists the operations
//! that may answer them with a `400`.

use serde_json::{Value, json};

/// A label key (`tocsin_model::template::check_label_key`).
const LABEL_KEY: &str = r"^[A-Za-z_][A-Za-z0-9_./-]{0,63}$";
/// A label value: at most 256 characters, no control character.
const LABEL_VALUE: &str = r"^[^\u0000-\u001f\u007f-\u009f]{0,256}$";
/// A team name (`tocsin_model::team::check_team_name`).
const TEAM: &str = r"^[a-z0-9][a-z0-9_-]{0,63}$";
/// A monitor name: 1-128 characters of `[A-Za-z0-9_.:/-]`.
const MONITOR: &str = r"^[A-Za-z0-9_.:/-]{1,128}$";
/// A duration such as `90s`, `5m` or `1h30m`, short enough to fit in milliseconds.
const DURATION: &str = r"^([0-9]{1,9}(ms|s|m|h|d)){1,8}$";
/// Text without NUL, which cannot be stored.
const NO_NUL: &str = r"^[^\u0000]*$";
/// Text of which every `${…}` names an alert field or a label key, without NUL.
const TEMPLATE: &str = r"^(?:[^$\u0000]|\$+[^${\u0000]|\$*\$\{(?:alert\.(?:monitor|status|since|message|count)|context\.[A-Za-z_][A-Za-z0-9_./-]{0,63})\})*\$*$";
/// A character Rust's `trim` removes (Unicode `White_Space`).
const BLANK: &str =
    r"[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
/// At least one character Rust's `trim` keeps (Unicode `White_Space` is trimmed).
const NOT_BLANK: &str =
    r"[^\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// Sets every constraint of this module on the document.
pub(crate) fn apply(doc: &mut Value) {
    events(doc);
    suppressions(doc);
    silences(doc);
    settings(doc);
    webhooks(doc);
    queries(doc);
}

/// Merges `extra`'s fields into the object at `target`.
fn merge(target: &mut Value, extra: Value) {
    if let (Some(into), Value::Object(from)) = (target.as_object_mut(), extra) {
        into.extend(from);
    }
}

/// The component schema `name`.
fn schema<'a>(doc: &'a mut Value, name: &str) -> &'a mut Value {
    &mut doc["components"]["schemas"][name]
}

/// The operation `method path`.
fn operation<'a>(doc: &'a mut Value, method: &str, path: &str) -> &'a mut Value {
    &mut doc["paths"][path][method]
}

/// Merges `extra` into the schema of the parameter `name` of every operation of `path`
/// (every path when `None`) that has one.
fn parameter(doc: &mut Value, path: Option<&str>, name: &str, extra: &Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (at, item) in paths {
        if path.is_some_and(|path| path != at) {
            continue;
        }
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for operation in item.values_mut() {
            let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for parameter in parameters.iter_mut().filter(|p| p["name"] == name) {
                merge(&mut parameter["schema"], extra.clone());
            }
        }
    }
}

/// Parameters of a filter or a collector: strings may hold templates, keys hold no NUL.
fn params() -> Value {
    let scalar = json!({
        "anyOf": [
            { "type": "string", "pattern": TEMPLATE },
            { "type": ["number", "boolean", "null"] },
        ]
    });
    json!({
        "type": "object",
        "propertyNames": { "pattern": NO_NUL },
        "additionalProperties": {
            "anyOf": [
                scalar,
                { "type": "array", "items": scalar },
                {
                    "type": "object",
                    "propertyNames": { "pattern": NO_NUL },
                    "additionalProperties": scalar,
                },
            ]
        }
    })
}

/// One entry of a filters or plugins list: `type` among `kinds`, `params` as [`params`]
/// with `required` parameters of the given schemas.
fn variant(kinds: &[&str], required: &[(&str, Value)]) -> Value {
    let mut params = params();
    if !required.is_empty() {
        let names: Vec<&str> = required.iter().map(|(name, _)| *name).collect();
        let properties: serde_json::Map<String, Value> = required
            .iter()
            .map(|(name, schema)| ((*name).to_owned(), schema.clone()))
            .collect();
        merge(
            &mut params,
            json!({ "required": names, "properties": properties }),
        );
    }
    let mut item = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "type": { "type": "string", "enum": kinds },
            "params": params,
        },
        "required": ["type"],
    });
    if !required.is_empty() {
        item["required"] = json!(["type", "params"]);
    }
    item
}

/// `Event` and its parts (`Event::validate`, `tocsin_model::event`).
fn events(doc: &mut Value) {
    let alert = &mut schema(doc, "Alert")["properties"];
    merge(&mut alert["monitor"], json!({ "pattern": MONITOR }));
    merge(
        &mut alert["message"],
        json!({ "maxLength": 16_384, "pattern": NO_NUL }),
    );
    merge(&mut alert["count"], json!({ "maximum": i64::MAX }));
    merge(
        &mut schema(doc, "Event")["properties"]["context"],
        json!({
            "maxProperties": 32,
            "propertyNames": { "pattern": LABEL_KEY },
            "additionalProperties": { "type": "string", "pattern": LABEL_VALUE },
            "properties": {
                "team": { "type": "string", "pattern": TEAM },
            },
        }),
    );
    let filter = schema(doc, "FilterSpec");
    let description = filter["description"].clone();
    *filter = json!({
        "description": description,
        "oneOf": [
            variant(&["state-change", "alert-suppression"], &[]),
            variant(&["ignore-flap"], &[("min-age", json!({ "type": "string", "pattern": DURATION }))]),
            variant(&["plugin"], &[("name", json!({ "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" }))]),
        ],
    });
    let plugin = schema(doc, "PluginSpec");
    let description = plugin["description"].clone();
    *plugin = json!({
        "description": description,
        "oneOf": [
            variant(&["markdown", "runbook", "logs", "cluster-health", "recent-changes", "previous-incidents"], &[]),
            variant(&["plugin"], &[("name", json!({ "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" }))]),
        ],
    });
    let grouping = &mut schema(doc, "Grouping")["properties"];
    merge(
        &mut grouping["keys"]["items"],
        json!({ "pattern": TEMPLATE }),
    );
    merge(&mut grouping["window"], json!({ "pattern": DURATION }));
    let alerting = &mut schema(doc, "Alerting")["properties"];
    for name in ["channel", "ticket-queue"] {
        merge(
            &mut alerting[name],
            json!({ "maxLength": 256, "pattern": TEMPLATE }),
        );
    }
}

/// `Draft`'s targets and metadata (`Draft::validate`).
fn suppressions(doc: &mut Value) {
    let draft = &mut schema(doc, "Draft")["properties"];
    merge(
        &mut draft["targets"]["items"],
        json!({
            "minProperties": 1,
            "maxProperties": 33,
            "propertyNames": { "pattern": LABEL_KEY },
            "additionalProperties": { "type": "string", "minLength": 1, "maxLength": 256 },
            // At least one exact (not `~regex`) label.
            "not": { "additionalProperties": { "pattern": "^~" } },
        }),
    );
    merge(
        &mut draft["metadata"],
        json!({ "maxProperties": 32, "propertyNames": { "minLength": 1, "maxLength": 64 } }),
    );
}

/// `POST /api/v2/silences` (`tocsin_ingest::adapt::alertmanager::draft`): positive
/// matchers only, one exact matcher at least, values a suppression target takes.
fn silences(doc: &mut Value) {
    let matcher = |regex: bool, value: Value| {
        json!({
            "type": "object",
            "required": ["name", "value", "isRegex"],
            "properties": {
                "name": { "type": "string", "pattern": LABEL_KEY },
                "value": value,
                "isRegex": { "type": "boolean", "const": regex },
                "isEqual": {
                    "type": "boolean",
                    "const": true,
                    "description": "`false` (`!=`, `!~`) is refused: a negative matcher silences every alert except the ones it names.",
                },
            },
        })
    };
    doc["components"]["schemas"]["PostableMatcher"] = json!({
        "description": "One matcher of a new silence: `=` (an exact value, not starting with `~`) or `=~` (an anchored regex).",
        "oneOf": [
            matcher(false, json!({ "type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^~]" })),
            matcher(true, json!({ "type": "string", "minLength": 1, "maxLength": 255 })),
        ],
    });
    let silence = &mut schema(doc, "PostableSilence")["properties"];
    merge(
        &mut silence["matchers"],
        json!({
            "items": { "$ref": "#/components/schemas/PostableMatcher" },
            "minItems": 1,
            "maxItems": 33,
            "contains": { "properties": { "isRegex": { "const": false } } },
        }),
    );
    merge(&mut silence["comment"], json!({ "maxLength": 1024 }));
}

/// Services, routes, runbooks.
fn settings(doc: &mut Value) {
    merge(
        &mut schema(doc, "ServiceSpec")["properties"]["retired"]["items"],
        json!({ "minLength": 1, "maxLength": 256, "pattern": NO_NUL }),
    );
    merge(
        &mut schema(doc, "NewChange")["properties"]["kind"],
        json!({ "enum": ["deploy", "config", "other"] }),
    );
    let named = |field: &str| json!({ "required": [field], "properties": { field: { "type": "string", "minLength": 1 } } });
    merge(
        schema(doc, "RouteBody"),
        json!({
            "anyOf": [
                named("page"),
                named("ticket"),
                named("chat"),
                { "required": ["webhooks"], "properties": { "webhooks": { "minItems": 1 } } },
            ]
        }),
    );
    if let Some(content) =
        operation(doc, "put", "/v1/runbooks/{id}")["requestBody"]["content"].as_object_mut()
    {
        for media in content.values_mut() {
            merge(&mut media["schema"], json!({ "pattern": NOT_BLANK }));
        }
    }
}

/// The vendor payloads of `POST /v1/webhooks/*`: the fields the adapters read
/// (`tocsin_ingest::adapt`), of the types they take; other fields are ignored.
fn webhooks(doc: &mut Value) {
    // Text goes into the alert's message, which holds no NUL.
    let text = json!({
        "anyOf": [
            { "type": "string", "pattern": NO_NUL },
            { "type": ["number", "boolean", "null"] },
        ]
    });
    let instant = json!({
        "anyOf": [
            { "type": "integer", "minimum": 0, "maximum": 253_402_300_799_999_i64 },
            { "type": "string", "format": "date-time" },
            { "type": "null" },
        ]
    });
    let tags = json!({
        "anyOf": [
            { "type": ["string", "number", "boolean", "null"] },
            { "type": "array", "items": { "type": "string" } },
        ]
    });
    doc["components"]["schemas"]["DatadogPayload"] = json!({
        "description": "A Datadog monitor notification (`docs/integrations/datadog.md`): `transition` and `monitor` or `alert_id` are needed.",
        "type": "object",
        "required": ["transition"],
        "anyOf": [{ "required": ["monitor"] }, { "required": ["alert_id"] }],
        "properties": {
            "transition": {
                "type": "string",
                "enum": ["Triggered", "Re-Triggered", "Warn", "Re-Warn", "No Data", "Re-No Data", "Renotify", "Recovered"],
            },
            "monitor": { "type": "string", "pattern": MONITOR },
            "alert_id": {
                "anyOf": [
                    { "type": "integer", "minimum": 0 },
                    { "type": "string", "pattern": "^[A-Za-z0-9_.:/-]{1,120}$" },
                ]
            },
            "date": instant,
            "last_updated": instant,
            "tags": tags,
            "scope": tags,
            // A label value: control characters are dropped.
            "hostname": { "type": ["string", "number", "boolean", "null"] },
            "title": text,
            "priority": text,
            "alert_status": text,
            "message": text,
            "body": text,
            "link": text,
            "query": text,
        },
    });
    let month = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)";
    let bare =
        format!("^{month} (0?[1-9]|1[0-9]|2[0-8]) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$");
    // Empty text and unfilled template variables count as absent (the time of receipt).
    let absent = format!(
        r"^{BLANK}*$|^{BLANK}*\$[A-Z][A-Z0-9_]*{BLANK}*$|^{BLANK}*\{{\{{[\s\S]*\}}\}}{BLANK}*$"
    );
    let time = json!({
        "anyOf": [
            { "type": "string", "format": "date-time" },
            { "type": "string", "pattern": bare },
            { "type": "string", "pattern": absent },
            { "type": "null" },
        ]
    });
    doc["components"]["schemas"]["LogglyPayload"] = json!({
        "description": "A Loggly alert (`docs/integrations/loggly.md`): `alert_name` is needed.",
        "type": "object",
        "required": ["alert_name"],
        "properties": {
            "alert_name": {
                "anyOf": [
                    {
                        "type": "string",
                        "pattern": r"^[^\u0000]*[A-Za-z0-9][^\u0000]*$",
                        // An unfilled template variable counts as absent.
                        "not": {
                            "anyOf": [
                                { "pattern": r"^\s*\$[A-Z][A-Z0-9_]*\s*$" },
                                { "pattern": r"^\s*\{\{[\s\S]*\}\}\s*$" },
                            ]
                        },
                    },
                    // A number or boolean is read as its text.
                    { "type": ["number", "boolean"] },
                ],
            },
            "start_time": time,
            "end_time": time,
            "num_hits": { "type": ["number", "string", "null"] },
            "search_link": text,
            // A label value: control characters are dropped.
            "source_group": { "type": ["string", "number", "boolean", "null"] },
            "alert_description": text,
            "query": text,
        },
    });
    for (path, name) in [
        ("/v1/webhooks/datadog", "DatadogPayload"),
        ("/v1/webhooks/loggly", "LogglyPayload"),
    ] {
        if let Some(content) =
            operation(doc, "post", path)["requestBody"]["content"].as_object_mut()
        {
            for media in content.values_mut() {
                media["schema"] = json!({ "$ref": format!("#/components/schemas/{name}") });
            }
        }
    }
}

/// Query and path parameters the handlers parse.
fn queries(doc: &mut Value) {
    let team = json!({ "pattern": TEAM });
    for path in [
        "/v1/changes",
        "/v1/logs-queries",
        "/v1/logs-queries/{name}",
        "/v1/runbooks/{id}",
        "/v1/routes",
        "/v1/routes/{team}",
        "/v1/routes/{team}/{service}",
        "/v1/services",
        "/v1/suppressions",
    ] {
        parameter(doc, Some(path), "team", &team);
    }
    parameter(
        doc,
        Some("/v1/routes/{team}/{service}"),
        "service",
        &json!({ "pattern": r"^[^\u0000]{1,256}$" }),
    );
    // `""` stands for alerts of no team.
    parameter(
        doc,
        Some("/v1/alerts"),
        "team",
        &json!({ "pattern": r"^([a-z0-9][a-z0-9_-]{0,63})?$" }),
    );
    parameter(
        doc,
        Some("/v1/alerts"),
        "label",
        &json!({ "items": { "type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_./-]{0,63}:" } }),
    );
    // Cursors as the previous page's `next` writes them.
    parameter(doc, Some("/v1/alerts"), "after", &json!({ "pattern": "/" }));
    for path in ["/v1/history", "/v1/suppressions/{id}/suppressed"] {
        parameter(
            doc,
            Some(path),
            "after",
            &json!({ "pattern": "^[+-]?[0-9]{1,18}/" }),
        );
    }
    // Prometheus matchers: a name, then `=`, `!=`, `=~` or `!~`.
    parameter(
        doc,
        Some("/api/v2/silences"),
        "filter",
        &json!({ "items": { "type": "string", "pattern": r"^[^=!]*[^=!\s][^=!]*(=|![=~])" } }),
    );
}
