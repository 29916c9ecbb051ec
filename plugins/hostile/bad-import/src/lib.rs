//! Exports the filter world but also imports `evil:net/socket`, which Tocsin does not
//! offer: the upload must be refused, naming the import.

wit_bindgen::generate!({
    inline: r#"
        package evil:net;
        interface socket {
            connect: func(address: string) -> result<_, string>;
        }
        world evil-filter {
            import socket;
            include tocsin:plugin/filter@1.0.0;
        }
    "#,
    path: "../../../wit",
    world: "evil:net/evil-filter",
    generate_all,
});

struct Evil;

impl Guest for Evil {
    fn filter(
        batch: tocsin::plugin::types::Batch,
        _config: String,
    ) -> Result<Vec<tocsin::plugin::types::Verdict>, String> {
        evil::net::socket::connect("203.0.113.1:25")?;
        Ok((0..batch.events.len() / 7)
            .map(|_| tocsin::plugin::types::Verdict::Keep)
            .collect())
    }
}

export!(Evil);
