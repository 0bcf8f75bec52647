//! An outbound queue outage loses nothing: a delivery that cannot be queued is answered with a
//! retryable status and its dedupe claim is given back, so Meta's retry is processed — once.
use parley::domain::consent::ConsentReply;
use parley_tests::*;
use serde_json::json;
use std::time::Duration;

/// The outage: the outbound queue is gone (`reprovision` brings it back under the same URL).
async fn outbound_queue_gone(sys: &System) -> String {
    let sqs = sys.running.app.producer.client().clone();
    let queue_url = sys.running.resources.queue("OutboundQueue").unwrap().to_string();
    sqs.delete_queue().queue_url(&queue_url).send().await.expect("queue deleted");
    queue_url
}

#[tokio::test]
async fn a_delivery_that_cannot_be_queued_is_processed_on_the_retry() {
    let sys = System::start().await;
    let queue_url = outbound_queue_gone(&sys).await;
    let to = customer();
    let body = wa_delivery(&to, &wamid(), now(), json!({"type": "text", "text": {"body": "Lieferzeit"}}));
    let first = sys.post_meta(&body).await;

    // The queue is back.
    let again = sys.reprovision().await;
    assert_eq!(again.queue("OutboundQueue"), Some(queue_url.as_str()));

    if !first.status().is_success() {
        // A non-2xx makes Meta retry the delivery; the retry must not be taken for a duplicate.
        assert!(first.status().is_server_error(), "a retryable status, got {}", first.status());
        let retry = sys.post_meta(&body).await;
        assert_eq!(retry.status(), 200);
    }
    let got = sys.assert_settles_at(&to, 1, Duration::from_millis(1500)).await;
    assert!(got[0]["text"].as_str().unwrap_or_default().len() > 1, "{got:#?}");
    sys.stop().await;
}

/// `body` posted while the outbound queue is gone: answered with a retryable status.
async fn refused_while_the_queue_is_gone(sys: &System, body: &str) {
    outbound_queue_gone(sys).await;
    let first = sys.post_meta(body).await;
    assert!(first.status().is_server_error(), "a retryable status, got {}", first.status());
}

/// Meta's retry of `body` once the queue is back: taken.
async fn retried_once_the_queue_is_back(sys: &System, body: &str) {
    sys.reprovision().await;
    assert_eq!(sys.post_meta(body).await.status(), 200);
}

/// A WhatsApp reply-button tap.
fn button_tap(to: &str, id: &str, title: &str) -> String {
    wa_delivery(
        to,
        &wamid(),
        now(),
        json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": id, "title": title}}}),
    )
}

fn flows_de() -> &'static parley::domain::flows::FlowSet {
    static FLOWS: std::sync::OnceLock<parley::domain::flows::Flows> = std::sync::OnceLock::new();
    FLOWS.get_or_init(|| parley::domain::flows::Flows::embedded().unwrap()).for_locale("default", "de")
}

/// The double opt-in's YES whose welcome could not be queued: the consent change was written
/// beside the failed enqueue (at once, so a STOP would hold), so Meta's retry finds the purpose
/// confirmed already — and still gets the welcome, once, rather than an answer to "Ja" as an
/// ordinary word.
#[tokio::test]
async fn a_yes_whose_welcome_could_not_be_queued_gets_it_on_the_retry() {
    let sys = System::start().await;
    let to = customer();
    sys.say("whatsapp", &to, "START").await;
    sys.wait_for_messages(&to, 1).await;

    let yes = button_tap(&to, "consent:yes", "Ja");
    refused_while_the_queue_is_gone(&sys, &yes).await;
    // The precondition that matters: the failed delivery's consent change is in the store.
    let consent = sys.consent_of("whatsapp", &to).await;
    assert_eq!(consent["purposes"]["marketing"], "confirmed", "{consent}");

    retried_once_the_queue_is_back(&sys, &yes).await;
    let got = sys.assert_settles_at(&to, 2, Duration::from_millis(1500)).await;
    assert_eq!(got[1]["text"], body_text(flows_de().consent().reply(ConsentReply::Welcome)).as_str(), "{got:#?}");
    // A third delivery of the same message is a duplicate: nothing more.
    assert_eq!(sys.post_meta(&yes).await.status(), 200);
    sys.assert_settles_at(&to, 2, Duration::from_millis(1500)).await;
    sys.stop().await;
}

/// "Hilfe" whose reply could not be queued: the handover is written only once the reply is
/// queued, so Meta's retry is still answered (a contact already handed over would get silence).
#[tokio::test]
async fn a_handover_whose_reply_could_not_be_queued_is_answered_on_the_retry() {
    let sys = System::start().await;
    let to = customer();
    let help = wa_text(&to, &wamid(), "Hilfe");
    refused_while_the_queue_is_gone(&sys, &help).await;
    let contact = parley::domain::ContactId::from_path("whatsapp", &to).unwrap();
    let record = sys.store().get_contact(&contact).await.unwrap().expect("touched by the first attempt");
    assert!(!record.handover, "not handed over while the reply is not queued");

    retried_once_the_queue_is_back(&sys, &help).await;
    let got = sys.assert_settles_at(&to, 1, Duration::from_millis(1500)).await;
    assert_eq!(got[0]["text"], body_text(&flows_de().handover().reply).as_str(), "{got:#?}");
    assert!(sys.store().get_contact(&contact).await.unwrap().unwrap().handover, "handed over once queued");
    sys.stop().await;
}

/// A reply held back while the window was closed (the template went out instead) is delivered
/// with the customer's next message; when that message's replies cannot be queued, the held-back
/// reply stays on the profile for Meta's retry instead of being cleared beside the failed enqueue.
#[tokio::test]
async fn a_held_back_reply_survives_a_delivery_that_could_not_be_queued() {
    let sys = System::start().await;
    let to = customer();
    // Meta re-delivered a message written two days ago: the template goes out, the reply waits.
    let old = wa_delivery(&to, &wamid(), now() - 2 * 86_400, json!({"type": "text", "text": {"body": "Lieferzeit"}}));
    assert_eq!(sys.post_meta(&old).await.status(), 200);
    let got = sys.assert_settles_at(&to, 1, Duration::from_millis(1000)).await;
    assert_eq!(got[0]["template"], "service_followup", "{got:#?}");

    let tap = wa_delivery(
        &to,
        &wamid(),
        now(),
        json!({"type": "button", "button": {"payload": parley::domain::CONTINUE_PAYLOAD, "text": "Weiter"}}),
    );
    refused_while_the_queue_is_gone(&sys, &tap).await;
    retried_once_the_queue_is_back(&sys, &tap).await;
    let got = sys.assert_settles_at(&to, 2, Duration::from_millis(1500)).await;
    assert_eq!(got[1]["text"], expected_reply(&text_content("Lieferzeit"), "de")[0], "{got:#?}");
    sys.stop().await;
}
