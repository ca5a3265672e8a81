//! Answers, manager → agent, signed by the manager's ECDSA key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::documents::{
    parse_grant_located, parse_identity_located, verify_grant, verify_identity, Grant,
    IdentityCertificate, Located,
};
use super::{AnswerError, RequestKind};
use crate::codes::ExportKey;
use crate::crypto::{verify_manager_signature, Environment, TrustAnchor};
use crate::time::parse as parse_time;
use crate::udi::Uuid;
use crate::xmlsig::enveloped::locate_with_spans;
#[cfg(feature = "manager")]
use {
    super::xml_out::XmlOut,
    crate::crypto::{ManagerSigningKey, RandomError},
    crate::time::format as format_time,
    crate::xmlsig::enveloped::sign_document,
};

/// The outcome the manager states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseStatus {
    /// Done; the body carries what was asked for.
    Ok,
    /// Refused or failed, with the manager's code (e.g. `TOKEN_INVALID`) and message.
    Failed {
        /// Machine-readable reason.
        code: String,
        /// Human-readable reason.
        message: String,
    },
    /// The manager does not speak the request's protocol version.
    VersionTooHigh,
}

/// An answer's envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The kind of request answered.
    pub kind: RequestKind,
    /// The manager's protocol version.
    pub version: u32,
    /// The request's nonce, echoed.
    pub nonce: String,
    /// The request's product-instance id, echoed (for `register`, the new one).
    pub piid: Option<Uuid>,
    /// The outcome.
    pub status: ResponseStatus,
    /// The manager's clock (signed; feeds only the clock-skew event, SPEC §11).
    pub server_time: DateTime<Utc>,
    /// The environment the manager signs for.
    pub environment: Environment,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "response")]
struct ResponseXml {
    #[serde(rename = "type")]
    kind: String,
    version: u32,
    nonce: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    piid: Option<String>,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    message: Option<String>,
    #[serde(rename = "serverTime")]
    server_time: String,
    environment: String,
}

/// Serializes and signs an answer; `documents` (already signed identity or grant) go into
/// `<body>` verbatim.
#[cfg(feature = "manager")]
pub fn encode_response(
    resp: &Response,
    documents: &[&[u8]],
    key: &ManagerSigningKey,
) -> Result<Vec<u8>, RandomError> {
    let doc = response_xml(resp, documents);
    let sig = key.sign(doc.as_bytes())?;
    Ok(sign_document(&doc, "response", &sig))
}

/// The answer before its signature: its [`ResponseXml`] as serde wrote it, with `documents`
/// in `<body>` (if any) just before the root's end tag.
#[cfg(feature = "manager")]
fn response_xml(resp: &Response, documents: &[&[u8]]) -> String {
    let (status, code, message) = match &resp.status {
        ResponseStatus::Ok => ("OK", None, None),
        ResponseStatus::Failed { code, message } => {
            ("FAILED", Some(code.as_str()), Some(message.as_str()))
        }
        ResponseStatus::VersionTooHigh => ("VERSION_TOO_HIGH", None, None),
    };
    let capacity = 512 + documents.iter().map(|d| d.len()).sum::<usize>();
    let mut w = XmlOut::with_capacity(capacity);
    w.element("response", |w| {
        w.text("type", resp.kind.as_str());
        w.value("version", resp.version);
        w.text("nonce", &resp.nonce);
        w.opt_text("piid", resp.piid.map(|p| p.to_string()).as_deref());
        w.text("status", status);
        w.opt_text("code", code);
        w.opt_text("message", message);
        w.text("serverTime", &format_time(resp.server_time));
        w.text("environment", resp.environment.as_str());
        if !documents.is_empty() {
            w.raw("<body>");
            for d in documents {
                w.raw(&String::from_utf8_lossy(d));
            }
            w.raw("</body>");
        }
    });
    w.finish()
}

/// An answer parsed but not yet verified: what the fuzz target exercises.
#[derive(Clone, Debug)]
pub struct ParsedResponse {
    /// The envelope.
    pub response: Response,
    signed_bytes: Vec<u8>,
    signature: Vec<u8>,
    /// The nested documents, verbatim, with what they say and where their signature is (not
    /// yet verified).
    identity: Option<(Vec<u8>, IdentityCertificate, Located)>,
    grant: Option<(Vec<u8>, Grant, Located)>,
    export_key: Option<ExportKey>,
}

/// Parses an answer without checking any signature: size limit, well-formedness, the
/// signature's position, the envelope and the nested documents' structure.
pub fn decode_response(raw: &[u8], max_len: usize) -> Result<ParsedResponse, AnswerError> {
    if raw.len() > max_len {
        return Err(AnswerError::Oversize {
            len: raw.len(),
            max: max_len,
        });
    }
    let (signed, [identity, grant, export_key]) =
        locate_with_spans(raw, "body", ["identity", "grant", "exportAuthorization"])?;
    if signed.root != "response" {
        return Err(AnswerError::Malformed(format!(
            "unexpected root <{}>",
            signed.root
        )));
    }
    let text = std::str::from_utf8(raw).map_err(|_| AnswerError::Malformed("not UTF-8".into()))?;
    let xml: ResponseXml = quick_xml::de::from_str(text)
        .map_err(|e| AnswerError::Malformed(format!("response: {e}")))?;
    let malformed = |what: &str| AnswerError::Malformed(format!("response: bad {what}"));
    let status = match xml.status.as_str() {
        "OK" => ResponseStatus::Ok,
        "FAILED" => ResponseStatus::Failed {
            code: xml.code.unwrap_or_default(),
            message: xml.message.unwrap_or_default(),
        },
        "VERSION_TOO_HIGH" => ResponseStatus::VersionTooHigh,
        _ => return Err(malformed("status")),
    };
    let piid = match xml.piid {
        None => None,
        Some(p) => Some(p.parse::<Uuid>().map_err(|_| malformed("piid"))?),
    };
    let response = Response {
        kind: RequestKind::parse(&xml.kind).ok_or_else(|| malformed("type"))?,
        version: xml.version,
        nonce: xml.nonce,
        piid,
        status,
        server_time: parse_time(&xml.server_time).ok_or_else(|| malformed("serverTime"))?,
        environment: Environment::parse(&xml.environment)
            .ok_or_else(|| malformed("environment"))?,
    };
    let [identity, grant, export_key] =
        [identity, grant, export_key].map(|span| span.map(|r| raw[r].to_vec()));
    let identity = match identity {
        Some(doc) => {
            let (certificate, located) =
                parse_identity_located(&doc, None).map_err(|e| e.into_identity())?;
            Some((doc, certificate, located))
        }
        None => None,
    };
    let grant = match grant {
        Some(doc) => {
            let (grant, located) = parse_grant_located(&doc, None).map_err(|e| e.into_grant())?;
            Some((doc, grant, located))
        }
        None => None,
    };
    let export_key = match export_key {
        Some(doc) => Some(
            std::str::from_utf8(&doc)
                .map_err(|_| AnswerError::ExportKey("not UTF-8".into()))
                .and_then(|t| {
                    ExportKey::parse(t).map_err(|e| AnswerError::ExportKey(e.to_string()))
                })?,
        ),
        None => None,
    };
    Ok(ParsedResponse {
        response,
        signed_bytes: signed.signed_bytes(),
        signature: signed.signature,
        identity,
        grant,
        export_key,
    })
}

/// A verified answer's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A new identity certificate (register, renewId) and its raw signed bytes.
    Identity {
        /// The verbatim signed document.
        raw: Vec<u8>,
        /// Its content.
        certificate: IdentityCertificate,
    },
    /// A grant (authorize) and its raw signed bytes.
    Grant {
        /// The verbatim signed document.
        raw: Vec<u8>,
        /// Its content.
        grant: Grant,
    },
    /// An export authorization key (exportRequest), its signature verified.
    ExportKey(ExportKey),
    /// Done, nothing to keep (deregister, exportReturn).
    Done,
    /// The manager refused or failed.
    Failed {
        /// Machine-readable reason.
        code: String,
        /// Human-readable reason.
        message: String,
    },
    /// The manager does not speak our protocol version.
    VersionTooHigh,
}

/// What the answer must echo.
pub(crate) struct Expected<'a> {
    pub kind: RequestKind,
    pub nonce: &'a str,
    pub piid: Option<Uuid>,
}

/// Verifies a parsed answer: the envelope signature and environment, the nonce, piid and
/// type echoes, then the nested document the request asked for.
pub(crate) fn verify_response(
    parsed: &ParsedResponse,
    anchors: &[TrustAnchor],
    environment: Environment,
    expected: &Expected<'_>,
) -> Result<(Answer, DateTime<Utc>), AnswerError> {
    let resp = &parsed.response;
    verify_manager_signature(
        anchors,
        environment,
        resp.environment,
        &parsed.signed_bytes,
        &parsed.signature,
    )
    .map_err(AnswerError::Signature)?;
    if resp.nonce != expected.nonce {
        return Err(AnswerError::NonceMismatch);
    }
    if resp.kind != expected.kind {
        return Err(AnswerError::KindMismatch);
    }
    // A registration answer names the new piid; everything else must echo ours.
    if expected.kind != RequestKind::Register && resp.piid != expected.piid {
        return Err(AnswerError::PiidMismatch);
    }
    let trust = (anchors, environment);
    let answer = match &resp.status {
        ResponseStatus::VersionTooHigh => Answer::VersionTooHigh,
        ResponseStatus::Failed { code, message } => Answer::Failed {
            code: code.clone(),
            message: message.clone(),
        },
        ResponseStatus::Ok => match expected.kind {
            // The nested documents parsed without error in `decode_response`; verifying the
            // signature of that parse is `parse_identity` / `parse_grant` with the anchors.
            RequestKind::Register | RequestKind::RenewId => {
                let (raw, certificate, located) = parsed
                    .identity
                    .as_ref()
                    .ok_or_else(|| AnswerError::Malformed("no identity certificate".into()))?;
                verify_identity(located, certificate, trust).map_err(|e| e.into_identity())?;
                if resp.piid != Some(certificate.piid) {
                    return Err(AnswerError::PiidMismatch);
                }
                Answer::Identity {
                    raw: raw.clone(),
                    certificate: certificate.clone(),
                }
            }
            RequestKind::Authorize => {
                let (raw, grant, located) = parsed
                    .grant
                    .as_ref()
                    .ok_or_else(|| AnswerError::Malformed("no grant".into()))?;
                verify_grant(located, grant, trust).map_err(|e| e.into_grant())?;
                if Some(grant.piid) != expected.piid {
                    return Err(AnswerError::PiidMismatch);
                }
                Answer::Grant {
                    raw: raw.clone(),
                    grant: grant.clone(),
                }
            }
            RequestKind::ExportRequest => {
                let key = parsed
                    .export_key
                    .clone()
                    .ok_or_else(|| AnswerError::Malformed("no export authorization key".into()))?;
                key.verify(anchors, environment)
                    .map_err(|e| AnswerError::ExportKey(e.to_string()))?;
                if Some(key.piid()) != expected.piid {
                    return Err(AnswerError::PiidMismatch);
                }
                Answer::ExportKey(key)
            }
            RequestKind::Deregister | RequestKind::ExportReturn => Answer::Done,
        },
    };
    Ok((answer, resp.server_time))
}

#[cfg(all(test, feature = "manager"))]
mod tests {
    use super::*;
    use crate::xmlsig::enveloped::insert_before_end;

    /// What serde wrote for an answer, before [`response_xml`] wrote it directly.
    fn response_by_serde(resp: &Response, documents: &[&[u8]]) -> String {
        let (status, code, message) = match &resp.status {
            ResponseStatus::Ok => ("OK", None, None),
            ResponseStatus::Failed { code, message } => {
                ("FAILED", Some(code.clone()), Some(message.clone()))
            }
            ResponseStatus::VersionTooHigh => ("VERSION_TOO_HIGH", None, None),
        };
        let xml = ResponseXml {
            kind: resp.kind.as_str().to_string(),
            version: resp.version,
            nonce: resp.nonce.clone(),
            piid: resp.piid.map(|p| p.to_string()),
            status: status.to_string(),
            code,
            message,
            server_time: format_time(resp.server_time),
            environment: resp.environment.as_str().to_string(),
        };
        let mut doc = quick_xml::se::to_string(&xml).unwrap();
        if !documents.is_empty() {
            let mut body = String::from("<body>");
            for d in documents {
                body.push_str(&String::from_utf8_lossy(d));
            }
            body.push_str("</body>");
            doc = insert_before_end(&doc, "response", &body);
        }
        doc
    }

    #[test]
    fn the_answer_is_written_as_serde_wrote_it() {
        let t = DateTime::from_timestamp(1_800_000_000, 5).unwrap();
        let texts = ["", "plain", "a & b < c > d \" ' \r\n\t ü ✓"];
        let grant: &[u8] = b"<grant><piid>x</piid><signature>AAEC</signature></grant>";
        let identity: &[u8] = b"<identity><a/><signature>AAEC</signature></identity>";
        for (n, text) in texts.iter().enumerate() {
            for status in [
                ResponseStatus::Ok,
                ResponseStatus::VersionTooHigh,
                ResponseStatus::Failed {
                    code: text.to_string(),
                    message: format!("{text}{text}"),
                },
            ] {
                for documents in [&[][..], &[grant][..], &[identity, grant][..]] {
                    let resp = Response {
                        kind: RequestKind::Authorize,
                        version: n as u32,
                        nonce: text.to_string(),
                        piid: (n % 2 == 0).then_some(Uuid([n as u8; 16])),
                        status: status.clone(),
                        server_time: t,
                        environment: Environment::Production,
                    };
                    assert_eq!(
                        response_xml(&resp, documents),
                        response_by_serde(&resp, documents)
                    );
                }
            }
        }
    }
}
