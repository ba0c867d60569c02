//! Communication for a filed chat message (ARCHITECTURE §5).

use fhir_sdk::r4b::codes::EventStatus;
use fhir_sdk::r4b::resources::{Communication, CommunicationPayload, CommunicationPayloadContent};
use fhir_sdk::r4b::types::Attachment;

use super::{
    RecordCtx, URI_SYSTEM, chat_urn, communication_ref, date_time, identifier, logical_ref,
    patient_ref, reference, user_system,
};
use crate::decide::Decision;
use crate::decide::state::{FiledMeta, Version};
use crate::identify::Identifier;

/// Which Communication and its links into the thread. For an edit, `id` and
/// `sent` are those of the edited message.
pub struct Links<'a> {
    pub id: &'a str,
    pub sent: chrono::DateTime<chrono::FixedOffset>,
    pub part_of: Option<&'a str>,
    pub in_response_to: Option<&'a str>,
}

fn subject(ctx: &RecordCtx<'_>, p: &Identifier) -> fhir_sdk::r4b::types::Reference {
    match ctx.patient_ref {
        Some(r) => reference(r),
        None => reference(patient_ref(p)),
    }
}

/// The payload of a filed message with neither text nor an attachment the
/// bridge can carry (a sticker, a poll, a card it cannot read).
pub const NOTHING_CARRIED: &str = "[message with no text or attachment the bridge can carry]";

/// Is `t` a MIME type (`type/subtype`, parameters allowed)? Platform content
/// types such as Teams' `reference` or `tabReference` are not, and
/// `Attachment.contentType` must be one (R4 `code`, BCP 13).
fn is_mime_type(t: &str) -> bool {
    let essence = t.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    matches!(essence.split_once('/'), Some((ty, sub)) if token(ty) && token(sub))
}

/// The attachment's URL as a valid URL (`Attachment.url` is an R4 `url`):
/// spaces and other characters not allowed in a URL are percent-encoded
/// (SharePoint paths have spaces). A value that is no absolute URL is left
/// out; the attachment keeps its title.
fn valid_url(u: &str) -> Option<String> {
    url::Url::parse(u.trim()).ok().map(String::from)
}

/// The Communication of a filed message, or its replacement after an edit.
///
/// `content`: what the message shows, when it is not what the deciding event
/// carries (a redacted edit brings back the version before it).
pub fn communication(
    d: &Decision,
    patient: &Identifier,
    links: &Links<'_>,
    content: Option<&Version>,
    ctx: &RecordCtx<'_>,
) -> Communication {
    let e = &d.event;
    let platform = &e.platform;
    let shown = content.cloned().unwrap_or_else(|| Version::of(e));
    let mut payload = Vec::new();
    if let Some(text) = shown.text.as_deref().filter(|t| !t.is_empty()) {
        payload.push(Some(
            CommunicationPayload::builder()
                .content(CommunicationPayloadContent::String(text.to_owned()))
                .build()
                .expect("payload content set"),
        ));
    }
    for a in &shown.attachments {
        let mut att = Attachment::builder()
            .build()
            .expect("attachment has no required fields");
        att.content_type = a
            .content_type
            .as_deref()
            .filter(|t| is_mime_type(t))
            .map(str::to_owned);
        att.url = a.url.as_deref().and_then(valid_url);
        att.title = a.name.clone();
        att.size = a.size.and_then(|s| u32::try_from(s).ok());
        payload.push(Some(
            CommunicationPayload::builder()
                .content(CommunicationPayloadContent::Attachment(att))
                .build()
                .expect("payload content set"),
        ));
    }
    if payload.is_empty() {
        // Never an empty record: what was sent but cannot be carried is named.
        payload.push(Some(
            CommunicationPayload::builder()
                .content(CommunicationPayloadContent::String(
                    NOTHING_CARRIED.to_owned(),
                ))
                .build()
                .expect("payload content set"),
        ));
    }
    let users = user_system(platform);
    let recipients = shown
        .mentions
        .iter()
        .map(|m| Some(logical_ref("Practitioner", &users, m, None)))
        .collect::<Vec<_>>();
    let mut c = Communication::builder()
        .identifier(vec![Some(identifier(
            URI_SYSTEM,
            &chat_urn(platform, links.id),
        ))])
        .status(EventStatus::Completed)
        .subject(subject(ctx, patient))
        .sent(date_time(links.sent))
        .sender(logical_ref(
            "Practitioner",
            &users,
            &shown.sender,
            shown.sender_name.as_deref(),
        ))
        .recipient(recipients)
        .payload(payload)
        .build()
        .expect("status set");
    // A request carries its priority (ARCHITECTURE §5).
    if let Some(t) = d.task.as_ref().filter(|t| t.request_id == links.id) {
        c.priority = Some(super::task::priority(t.task.priority));
    }
    if let Some(p) = links.part_of {
        c.part_of = vec![Some(reference(communication_ref(platform, p)))];
    }
    if let Some(r) = links.in_response_to {
        c.in_response_to = vec![Some(reference(communication_ref(platform, r)))];
    }
    c
}

/// The replacement Communication of a redacted message: entered-in-error,
/// no payload. `target` is the redacted event's id.
///
/// Entered-in-error withdraws the content, not the facts: the time, the
/// sender and the thread links of the message stay (`meta`; absent for a
/// message filed before they were kept).
pub fn redacted(
    d: &Decision,
    target: &str,
    meta: Option<&FiledMeta>,
    patient: &Identifier,
    ctx: &RecordCtx<'_>,
) -> Communication {
    let platform = &d.event.platform;
    let mut c = Communication::builder()
        .identifier(vec![Some(identifier(
            URI_SYSTEM,
            &chat_urn(platform, target),
        ))])
        .status(EventStatus::EnteredInError)
        .subject(subject(ctx, patient))
        .build()
        .expect("status set");
    if let Some(m) = meta {
        c.sent = Some(date_time(m.sent));
        if let Some(s) = &m.sender {
            c.sender = Some(logical_ref("Practitioner", &user_system(platform), s, None));
        }
        if let Some(p) = &m.part_of {
            c.part_of = vec![Some(reference(communication_ref(platform, p)))];
        }
        if let Some(r) = &m.in_response_to {
            c.in_response_to = vec![Some(reference(communication_ref(platform, r)))];
        }
    }
    c
}
