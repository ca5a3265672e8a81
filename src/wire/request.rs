//! Requests, agent → manager, signed by the device key.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::xml_out::XmlOut;
use super::{AnswerError, RequestKind};
use crate::crypto::{DeviceKey, B64};
use crate::time::{format as format_time, parse as parse_time};
use crate::udi::{Udi, Uuid};
use crate::xmlsig::enveloped::{locate, sign_document};

/// One usage line of an authorization request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLine {
    /// The entitlement tag as declared.
    pub tag: String,
    /// The count in use.
    pub count: u32,
}

/// The body of a `register` request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBody {
    /// The registration token (secret).
    pub token: String,
    /// The new device public key, base64 of 32 bytes.
    #[serde(rename = "publicKey")]
    pub public_key: String,
    /// Reregistration with `force`.
    pub force: bool,
}

impl std::fmt::Debug for RegisterBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterBody")
            .field("token", &"<redacted>")
            .field("public_key", &self.public_key)
            .field("force", &self.force)
            .finish()
    }
}

/// The body of an `authorize` request: a usage report with its sequence number (SPEC §12).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeBody {
    /// Increases with every new report; a resent report keeps its number.
    pub sequence: u64,
    /// Declared tags with their counts.
    #[serde(rename = "entitlement", default)]
    pub usage: Vec<UsageLine>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Empty {}

/// The body of a `deregister` request: the export authorization keys it returns (SPEC §7).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeregisterBody {
    /// The ids of the keys returned with the deregistration.
    #[serde(rename = "exportKey", default)]
    pub export_keys: Vec<String>,
}

/// The body of an `exportRequest` or `exportReturn` request (SPEC §7).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportBody {
    /// The feature, e.g. `CUCM_Export_Restricted_Authorization_Key`.
    pub feature: String,
    /// For a return: the id of the key returned.
    #[serde(rename = "keyId", skip_serializing_if = "Option::is_none", default)]
    pub key_id: Option<String>,
}

/// The body of a request; exactly one member is present.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestBody {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    register: Option<RegisterBody>,
    #[serde(rename = "renewId", skip_serializing_if = "Option::is_none", default)]
    renew_id: Option<Empty>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    authorize: Option<AuthorizeBody>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    deregister: Option<DeregisterBody>,
    #[serde(
        rename = "exportRequest",
        skip_serializing_if = "Option::is_none",
        default
    )]
    export_request: Option<ExportBody>,
    #[serde(
        rename = "exportReturn",
        skip_serializing_if = "Option::is_none",
        default
    )]
    export_return: Option<ExportBody>,
}

impl RequestBody {
    /// A `register` body.
    pub fn register(body: RegisterBody) -> Self {
        RequestBody {
            register: Some(body),
            ..Default::default()
        }
    }
    /// A `renewId` body.
    pub fn renew_id() -> Self {
        RequestBody {
            renew_id: Some(Empty {}),
            ..Default::default()
        }
    }
    /// An `authorize` body.
    pub fn authorize(body: AuthorizeBody) -> Self {
        RequestBody {
            authorize: Some(body),
            ..Default::default()
        }
    }
    /// A `deregister` body.
    pub fn deregister() -> Self {
        RequestBody::deregister_returning(Vec::new())
    }
    /// A `deregister` body returning the export keys `export_keys` (their ids).
    pub fn deregister_returning(export_keys: Vec<String>) -> Self {
        RequestBody {
            deregister: Some(DeregisterBody { export_keys }),
            ..Default::default()
        }
    }
    /// An `exportRequest` body.
    pub fn export_request(feature: String) -> Self {
        RequestBody {
            export_request: Some(ExportBody {
                feature,
                key_id: None,
            }),
            ..Default::default()
        }
    }
    /// An `exportReturn` body.
    pub fn export_return(feature: String, key_id: String) -> Self {
        RequestBody {
            export_return: Some(ExportBody {
                feature,
                key_id: Some(key_id),
            }),
            ..Default::default()
        }
    }
    /// The deregister member, if that is what this body holds.
    pub fn as_deregister(&self) -> Option<&DeregisterBody> {
        self.deregister.as_ref()
    }
    /// The export member (request or return), if that is what this body holds.
    pub fn as_export(&self) -> Option<&ExportBody> {
        self.export_request.as_ref().or(self.export_return.as_ref())
    }
    /// The register member, if that is what this body holds.
    pub fn as_register(&self) -> Option<&RegisterBody> {
        self.register.as_ref()
    }
    /// The authorize member, if that is what this body holds.
    pub fn as_authorize(&self) -> Option<&AuthorizeBody> {
        self.authorize.as_ref()
    }
    fn kind(&self) -> Option<RequestKind> {
        let present = [
            (self.register.is_some(), RequestKind::Register),
            (self.renew_id.is_some(), RequestKind::RenewId),
            (self.authorize.is_some(), RequestKind::Authorize),
            (self.deregister.is_some(), RequestKind::Deregister),
            (self.export_request.is_some(), RequestKind::ExportRequest),
            (self.export_return.is_some(), RequestKind::ExportReturn),
        ];
        let mut kinds = present.iter().filter(|(p, _)| *p).map(|(_, k)| *k);
        match (kinds.next(), kinds.next()) {
            (Some(k), None) => Some(k),
            _ => None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename = "request")]
struct RequestXml {
    #[serde(rename = "type")]
    kind: String,
    version: u32,
    nonce: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    piid: Option<String>,
    udi: String,
    #[serde(rename = "sentAt")]
    sent_at: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    ip: Option<String>,
    body: RequestBody,
    // Present on the wire; checked through `xmlsig::enveloped::locate`, not by serde.
    #[serde(skip_serializing, default)]
    #[allow(dead_code)]
    signature: Option<String>,
}

/// A request, before signing (agent) or after parsing (manager).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// What is asked.
    pub kind: RequestKind,
    /// The protocol version the sender speaks.
    pub version: u32,
    /// Fresh for every transmission; the answer must echo it.
    pub nonce: String,
    /// The product-instance id, after registration.
    pub piid: Option<Uuid>,
    /// The sender's UDI.
    pub udi: Udi,
    /// The sender's clock when it sent the request.
    pub sent_at: DateTime<Utc>,
    /// The instance's host name, unless privacy is on.
    pub hostname: Option<String>,
    /// The instance's IP address, unless privacy is on.
    pub ip: Option<String>,
    /// The payload.
    pub body: RequestBody,
}

/// Serializes and signs a request with the device key.
pub fn encode_request(req: &Request, key: &DeviceKey) -> Vec<u8> {
    let doc = request_xml(req);
    let signature = key.sign(doc.as_bytes());
    sign_document(&doc, "request", &signature)
}

/// The request before its signature: what serializing its [`RequestXml`] writes.
fn request_xml(req: &Request) -> String {
    let mut w = XmlOut::with_capacity(640);
    w.element("request", |w| {
        w.text("type", req.kind.as_str());
        w.value("version", req.version);
        w.text("nonce", &req.nonce);
        w.opt_text("piid", req.piid.map(|p| p.to_string()).as_deref());
        w.text("udi", &req.udi.code_form());
        w.text("sentAt", &format_time(req.sent_at));
        w.opt_text("hostname", req.hostname.as_deref());
        w.opt_text("ip", req.ip.as_deref());
        w.element("body", |w| body_xml(w, &req.body));
    });
    w.finish()
}

fn body_xml(w: &mut XmlOut, body: &RequestBody) {
    if let Some(b) = &body.register {
        w.element("register", |w| {
            w.text("token", &b.token);
            w.text("publicKey", &b.public_key);
            w.value("force", b.force);
        });
    }
    if body.renew_id.is_some() {
        w.element("renewId", |_| {});
    }
    if let Some(b) = &body.authorize {
        w.element("authorize", |w| {
            w.value("sequence", b.sequence);
            for line in &b.usage {
                w.element("entitlement", |w| {
                    w.text("tag", &line.tag);
                    w.value("count", line.count);
                });
            }
        });
    }
    if let Some(b) = &body.deregister {
        w.element("deregister", |w| {
            for key in &b.export_keys {
                w.text("exportKey", key);
            }
        });
    }
    for (name, b) in [
        ("exportRequest", &body.export_request),
        ("exportReturn", &body.export_return),
    ] {
        if let Some(b) = b {
            w.element(name, |w| {
                w.text("feature", &b.feature);
                w.opt_text("keyId", b.key_id.as_deref());
            });
        }
    }
}

/// A parsed request and the bytes its signature covers; the manager verifies it with the key
/// of the instance (or, for `register`, the key in the body). `Debug` leaves out the signed
/// bytes, which may hold a token.
#[derive(Clone)]
pub struct ParsedRequest {
    /// The request.
    pub request: Request,
    /// The signed bytes.
    pub signed_bytes: Vec<u8>,
    /// The device's signature.
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for ParsedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedRequest")
            .field("request", &self.request)
            .field("signed_len", &self.signed_bytes.len())
            .finish_non_exhaustive()
    }
}

impl ParsedRequest {
    /// Verifies the device signature with `public_key`.
    pub fn verify(&self, public_key: &[u8]) -> bool {
        crate::crypto::verify_device_signature(public_key, &self.signed_bytes, &self.signature)
    }

    /// The public key carried by a `register` body.
    pub fn register_key(&self) -> Option<[u8; 32]> {
        let body = self.request.body.as_register()?;
        B64.decode(&body.public_key).ok()?.try_into().ok()
    }
}

/// Parses a request (no signature check). What the manager runs on untrusted bytes.
pub fn decode_request(raw: &[u8], max_len: usize) -> Result<ParsedRequest, AnswerError> {
    if raw.len() > max_len {
        return Err(AnswerError::Oversize {
            len: raw.len(),
            max: max_len,
        });
    }
    let signed = locate(raw)?;
    if signed.root != "request" {
        return Err(AnswerError::Malformed(format!(
            "unexpected root <{}>",
            signed.root
        )));
    }
    let text = std::str::from_utf8(raw).map_err(|_| AnswerError::Malformed("not UTF-8".into()))?;
    let xml: RequestXml = quick_xml::de::from_str(text)
        .map_err(|e| AnswerError::Malformed(format!("request: {e}")))?;
    let body_kind = xml.body.kind();
    let kind = RequestKind::parse(&xml.kind)
        .filter(|k| Some(*k) == body_kind)
        .ok_or_else(|| AnswerError::Malformed("request type and body disagree".into()))?;
    let piid = match xml.piid {
        None => None,
        Some(p) => Some(
            p.parse::<Uuid>()
                .map_err(|_| AnswerError::Malformed("bad piid".into()))?,
        ),
    };
    let request = Request {
        kind,
        version: xml.version,
        nonce: xml.nonce,
        piid,
        udi: Udi::parse_code_form(&xml.udi)
            .map_err(|e| AnswerError::Malformed(format!("udi: {e}")))?,
        sent_at: parse_time(&xml.sent_at)
            .ok_or_else(|| AnswerError::Malformed("bad sentAt".into()))?,
        hostname: xml.hostname,
        ip: xml.ip,
        body: xml.body,
    };
    Ok(ParsedRequest {
        request,
        signed_bytes: signed.signed_bytes(),
        signature: signed.signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::PROTOCOL_VERSION;

    /// What serde wrote for a request, before [`request_xml`] wrote it directly.
    fn request_by_serde(req: &Request) -> String {
        let xml = RequestXml {
            kind: req.kind.as_str().to_string(),
            version: req.version,
            nonce: req.nonce.clone(),
            piid: req.piid.map(|p| p.to_string()),
            udi: req.udi.code_form(),
            sent_at: format_time(req.sent_at),
            hostname: req.hostname.clone(),
            ip: req.ip.clone(),
            body: req.body.clone(),
            signature: None,
        };
        quick_xml::se::to_string(&xml).unwrap()
    }

    #[test]
    fn the_request_is_written_as_serde_wrote_it() {
        let texts = ["", "plain", "a & b < c > d \" ' \r\n\t ü ✓"];
        for (n, text) in texts.iter().enumerate() {
            let usage = |k: usize| {
                (0..k)
                    .map(|i| UsageLine {
                        tag: format!("{text}{i}"),
                        count: i as u32 * 1000,
                    })
                    .collect::<Vec<_>>()
            };
            let bodies = [
                RequestBody::default(),
                RequestBody::register(RegisterBody {
                    token: text.to_string(),
                    public_key: format!("{text}="),
                    force: n % 2 == 0,
                }),
                RequestBody::renew_id(),
                RequestBody::authorize(AuthorizeBody {
                    sequence: u64::MAX - n as u64,
                    usage: usage(0),
                }),
                RequestBody::authorize(AuthorizeBody {
                    sequence: 0,
                    usage: usage(3),
                }),
                RequestBody::deregister(),
                RequestBody::deregister_returning(vec![text.to_string(), "k2".into()]),
                RequestBody::export_request(text.to_string()),
                RequestBody::export_return(text.to_string(), format!("{text}-id")),
            ];
            for body in bodies {
                let mut req = sample(body, RequestKind::Authorize);
                req.nonce = text.to_string();
                if n == 1 {
                    req.piid = None;
                    req.hostname = None;
                    req.ip = Some(text.to_string());
                }
                assert_eq!(request_xml(&req), request_by_serde(&req));
            }
        }
    }

    fn sample(body: RequestBody, kind: RequestKind) -> Request {
        Request {
            kind,
            version: PROTOCOL_VERSION,
            nonce: "00ff".into(),
            piid: Some(Uuid([7; 16])),
            udi: "PID:UCM,SN:1".parse().unwrap(),
            sent_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            hostname: Some("ucm<pub>".into()),
            ip: None,
            body,
        }
    }

    #[test]
    fn requests_round_trip_and_verify() {
        let key = DeviceKey::from_seed([1; 32]);
        let req = sample(
            RequestBody::authorize(AuthorizeBody {
                sequence: 4,
                usage: vec![UsageLine {
                    tag: "t".into(),
                    count: 2,
                }],
            }),
            RequestKind::Authorize,
        );
        let bytes = encode_request(&req, &key);
        let parsed = decode_request(&bytes, 1 << 20).unwrap();
        assert_eq!(parsed.request, req);
        assert!(parsed.verify(&key.public_key()));
        let mut flipped = bytes.clone();
        let at = flipped.iter().position(|&b| b == b'4').unwrap();
        flipped[at] = b'5';
        let parsed = decode_request(&flipped, 1 << 20).unwrap();
        assert!(!parsed.verify(&key.public_key()));
    }

    #[test]
    fn body_must_match_type() {
        let key = DeviceKey::from_seed([1; 32]);
        let mut req = sample(RequestBody::deregister(), RequestKind::Deregister);
        req.kind = RequestKind::RenewId;
        let bytes = encode_request(&req, &key);
        assert!(matches!(
            decode_request(&bytes, 1 << 20),
            Err(AnswerError::Malformed(_))
        ));
    }
}
