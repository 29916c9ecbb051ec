//! Signing in: a token, checked with the API's `GET /v1/whoami` and kept in an HttpOnly,
//! SameSite=Strict cookie, so no script can read it and no other site can send it. Each
//! form carries a CSRF token derived from the session's token, checked on every post.

use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::{self, Refusal, Ui};
use crate::page::{self, Failure};

/// The cookie's name.
const COOKIE: &str = "tocsin_session";

/// How long a sign-in lasts: one on-call shift and then some.
const MAX_AGE_SECONDS: u32 = 12 * 3600;

/// Who is signed in: the token, and what the API says it stands for.
pub(crate) struct Session {
    api: axum::Router,
    token: String,
    /// The team the token acts for; `None` for an admin.
    pub team: Option<String>,
    /// Whether it acts for every team.
    pub admin: bool,
}

impl page::Signed for Session {
    fn name(&self) -> String {
        match &self.team {
            Some(team) => format!("team {team}"),
            None => "admin (every team)".to_owned(),
        }
    }

    fn csrf(&self) -> String {
        csrf_of(&self.token)
    }
}

impl Session {
    /// Fails unless `sent` is this session's CSRF token.
    pub fn check(&self, sent: &str) -> Result<(), Failure> {
        if bool::from(csrf_of(&self.token).as_bytes().ct_eq(sent.as_bytes())) {
            Ok(())
        } else {
            Err(Failure::Csrf)
        }
    }

    /// `GET uri` on the API as this session's token.
    pub async fn get(&self, uri: &str) -> Result<Value, Failure> {
        Ok(api::call(&self.api, &self.token, Method::GET, uri, None).await?)
    }

    /// A call with a JSON body (or none), its refusal kept for the page to show.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<Value, Refusal> {
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        api::call(&self.api, &self.token, method, uri, body).await
    }

    /// A call with a body of any content type.
    pub async fn send_bytes(
        &self,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value, Refusal> {
        api::call(
            &self.api,
            &self.token,
            method,
            uri,
            Some((content_type, body)),
        )
        .await
    }
}

impl FromRequestParts<Ui> for Session {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, ui: &Ui) -> Result<Self, Failure> {
        let token = cookie(&parts.headers).ok_or(Failure::SignIn)?;
        let who = api::call(&ui.api, &token, Method::GET, "/v1/whoami", None).await?;
        Ok(Self {
            api: ui.api.clone(),
            token,
            team: who["team"].as_str().map(str::to_owned),
            admin: who["admin"].as_bool().unwrap_or(false),
        })
    }
}

/// The session cookie's token, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

fn csrf_of(token: &str) -> String {
    let digest = Sha256::digest(format!("tocsin-ui-csrf:{token}").as_bytes());
    hex::encode(&digest[..16])
}

/// The sign-in page.
pub(crate) async fn form() -> Markup {
    sign_in(None)
}

fn sign_in(error: Option<&str>) -> Markup {
    page::bare(
        "Sign in",
        html! {
            h1 { "Sign in to Tocsin" }
            p { "Paste an API token. A team token shows that team's incidents, alerts, suppressions and plugins; an admin token shows every team's. An admin creates tokens with " code { "tocsin token create" } "." }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form method="post" action="/ui/login" {
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The sign-in form.
#[derive(Deserialize)]
pub(crate) struct SignIn {
    token: String,
}

/// Checks the token with the API and sets the session cookie.
pub(crate) async fn login(
    State(ui): State<Ui>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let token = form.token.trim();
    match api::call(&ui.api, token, Method::GET, "/v1/whoami", None).await {
        Ok(_) => {
            // Secure when the request reached Tocsin over HTTPS (a TLS proxy says so).
            let secure = headers
                .get("x-forwarded-proto")
                .is_some_and(|p| p.as_bytes() == b"https");
            let cookie = format!(
                "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={MAX_AGE_SECONDS}{}",
                if secure { "; Secure" } else { "" }
            );
            (
                [(header::SET_COOKIE, cookie)],
                Redirect::to("/ui/incidents"),
            )
                .into_response()
        }
        Err(refusal) => {
            let message = if refusal.status.as_u16() == 401 {
                "That token is unknown or revoked.".to_owned()
            } else {
                refusal.message
            };
            (refusal.status, sign_in(Some(&message))).into_response()
        }
    }
}

/// The sign-out form.
#[derive(Deserialize)]
pub(crate) struct SignOut {
    csrf: String,
}

/// Clears the session cookie.
pub(crate) async fn logout(session: Session, Form(form): Form<SignOut>) -> Response {
    if let Err(e) = session.check(&form.csrf) {
        return e.into_response();
    }
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "theme=dark; tocsin_session=tocsin_ab_cd; x=1"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(cookie(&headers).as_deref(), Some("tocsin_ab_cd"));
        headers.insert(
            header::COOKIE,
            "tocsin_session=".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(cookie(&headers), None);
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_do_not_reveal_it() {
        let a = csrf_of("tocsin_a_secret");
        assert_eq!(a.len(), 32);
        assert_ne!(a, csrf_of("tocsin_b_secret"));
        assert!(!a.contains("secret"));
    }
}
