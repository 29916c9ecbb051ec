//! The service catalogue: whose events an entry steers.

use super::*;

#[test]
fn a_catalogue_entry_steers_only_its_owners_events() {
    let mut b = Bench::new();
    let squatted = ServiceSpec {
        team: Some("bender".into()),
        customer_facing: false,
        retired: ["w1".to_owned()].into(),
        grouping: Some(tocsin_model::event::Grouping {
            keys: Some(Vec::new()),
            window: None,
        }),
        ..ServiceSpec::default()
    };
    b.engine
        .set_rules(rules(vec![("flexo-web", squatted)], vec![]));
    let web = |instance: &str| {
        json!({"alert": {"monitor": "Http", "status": "unhealthy"},
               "context": {"service": "flexo-web", "region": "eu-west-1a", "instance": instance},
               "alerting": {"priority": "high"}})
    };
    b.send_for("flexo", MIN, web("w1"));
    b.send_for("flexo", MIN, web("w2"));
    let open = b.open();
    assert_eq!(
        open.len(),
        1,
        "not retired, grouped by default: {:?}",
        b.reasons()
    );
    assert_eq!(open[0].alerts, 2);
    assert_eq!(open[0].priority, Priority::High, "not demoted");
    assert_eq!(open[0].key, "Http | flexo-web | eu-west-1a");

    b.send_for("bender", 2 * MIN, web("w1"));
    let last = b.history.last().expect("bender's event");
    assert!(
        last.reason.starts_with("retired-host: w1"),
        "the owner's events get the entry: {}",
        last.reason
    );
}

#[test]
fn rules_hand_a_service_only_to_its_owner() {
    let rules = rules(
        vec![(
            "flexo-web",
            ServiceSpec {
                team: Some("bender".into()),
                ..ServiceSpec::default()
            },
        )],
        vec![],
    );
    assert!(rules.service_for("bender", "flexo-web").is_some());
    assert!(rules.service_for("flexo", "flexo-web").is_none());
    assert!(
        rules.service_for("", "flexo-web").is_none(),
        "an event of no team gets no team's entry"
    );
}
