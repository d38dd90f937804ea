//! The real cloud client against the real fake cloud on 127.0.0.1.

use doorsync::cloud::sim::{Fault, SimConfig, SimHandle};
use doorsync::cloud::wire::{self, ImageFormat};
use doorsync::cloud::{CloudClient, CloudError, CloudSettings, ErrorClass, FaceCloud, ImageSource};
use doorsync::domain::{Secret, UserKey};

use crate::harness::{KEY, SECRET, local_cloud_settings, sim, sim_with};

fn settings(sim: &SimHandle) -> CloudSettings {
    local_cloud_settings(&sim.base_url())
}

fn client(sim: &SimHandle) -> CloudClient {
    CloudClient::new(settings(sim)).unwrap()
}

fn user(id: &str) -> UserKey {
    UserKey::new("IDENTITY", id)
}

#[tokio::test]
async fn roster_walks_all_three_pages() {
    let sim = sim(45).await;
    let roster = client(&sim).roster().await.unwrap();
    assert_eq!(roster.len(), 45);
    assert_eq!(roster.first().unwrap().key, user("u-0001"));
    assert_eq!(roster.last().unwrap().key, user("u-0045"));
    assert_eq!(sim.request_count(wire::PATH_ROSTER), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_fake_cloud_serves_its_request_counters_uncounted() {
    let sim = sim(45).await;
    client(&sim).roster().await.unwrap();
    let url = format!("{}{}", sim.base_url(), doorsync::cloud::sim::PATH_STATS);
    for _ in 0..2 {
        let stats: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        assert_eq!(stats["requests"][wire::PATH_ROSTER], 3, "{stats}");
        assert_eq!(stats["requests"].as_object().unwrap().len(), 1, "{stats}");
        assert_eq!(stats["image_bytes_served"], 0, "{stats}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn roster_marks_revoked_statuses() {
    let sim = sim(5).await;
    sim.set_status("u-0002", Some("transferDeleted"));
    let roster = client(&sim).roster().await.unwrap();
    let revoked: Vec<_> = roster
        .iter()
        .filter(|e| e.revoked)
        .map(|e| e.key.user_id.as_str())
        .collect();
    assert_eq!(revoked, ["u-0002"]);
}

#[tokio::test]
async fn a_failing_page_two_fails_the_whole_roster() {
    let sim = sim(45).await;
    sim.set_roster_page_fault(2, Some(Fault::ServerError));
    let err = client(&sim).roster().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Retryable, "{err}");
    sim.set_roster_page_fault(2, Some(Fault::MalformedJson));
    let err = client(&sim).roster().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::BadResponse, "{err}");
}

#[tokio::test]
async fn url_and_base64_modes_give_identical_image_bytes() {
    let sim = sim(3).await;
    let url_client = client(&sim);
    let mut s = settings(&sim);
    s.image_format = ImageFormat::Base64;
    let b64_client = CloudClient::new(s).unwrap();
    let by_url = url_client.get_face(&user("u-0002")).await.unwrap();
    let inline = b64_client.get_face(&user("u-0002")).await.unwrap();
    assert!(matches!(by_url.image, ImageSource::Url(_)));
    assert!(matches!(inline.image, ImageSource::Inline(_)));
    let a = url_client.fetch_image(&by_url.image).await.unwrap();
    let b = b64_client.fetch_image(&inline.image).await.unwrap();
    assert_eq!(a, b);
    assert!(image::load_from_memory(&a).is_ok());
    assert_eq!(
        by_url.fingerprint(),
        url_client.get_face(&user("u-0002")).await.unwrap().fingerprint()
    );
}

#[tokio::test]
async fn wrong_secret_is_an_auth_error_naming_the_app_key_without_the_secret() {
    let sim = sim(3).await;
    let mut s = settings(&sim);
    s.app_secret = Secret::new(b"wrong-secret-value-0000".to_vec());
    let err = CloudClient::new(s).unwrap().roster().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Auth);
    let text = err.to_string();
    assert!(
        text.contains(KEY) && text.contains("app key") && text.contains("NTP"),
        "{text}"
    );
    assert!(text.contains("StringToSign"), "gateway detail missing: {text}");
    assert!(
        !text.contains("wrong-secret-value") && !text.contains("0123456789abcdef"),
        "{text}"
    );
    assert!(!format!("{err:?}").contains("wrong-secret-value"));
    assert_eq!(sim.request_count(wire::PATH_ROSTER), 1, "auth errors are not retried");
}

#[tokio::test]
async fn transient_faults_are_retried_to_success() {
    let sim = sim(3).await;
    sim.push_fault(wire::PATH_IMAGE_GET, Fault::ServerError, 1);
    sim.push_fault(wire::PATH_IMAGE_GET, Fault::RequestLimited, 1);
    sim.push_fault(wire::PATH_IMAGE_GET, Fault::HsfTimeout, 1);
    let face = client(&sim).get_face(&user("u-0001")).await.unwrap();
    assert_eq!(face.key, user("u-0001"));
    assert_eq!(sim.request_count(wire::PATH_IMAGE_GET), 4);
}

#[tokio::test]
async fn persistent_transient_faults_surface_after_max_attempts() {
    let sim = sim(3).await;
    sim.push_fault(wire::PATH_IMAGE_GET, Fault::ServerError, 10);
    let err = client(&sim).get_face(&user("u-0001")).await.unwrap_err();
    assert!(matches!(err, CloudError::Gateway { status: 503, .. }), "{err}");
    assert_eq!(sim.request_count(wire::PATH_IMAGE_GET), 4);
}

#[tokio::test]
async fn malformed_json_is_a_bad_response() {
    let sim = sim(3).await;
    sim.push_fault(wire::PATH_IMAGE_GET, Fault::MalformedJson, 1);
    let err = client(&sim).get_face(&user("u-0001")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::BadResponse, "{err}");
}

#[tokio::test]
async fn oversize_image_is_refused_naming_the_cap() {
    let sim = sim(3).await;
    sim.set_image("u-0001", vec![0xAB; 300_000]);
    let mut s = settings(&sim);
    s.image_download_max_bytes = 100_000;
    let c = CloudClient::new(s).unwrap();
    let face = c.get_face(&user("u-0001")).await.unwrap();
    let err = c.fetch_image(&face.image).await.unwrap_err();
    assert!(matches!(err, CloudError::ImageTooLarge { max_bytes: 100_000 }), "{err}");
    assert!(err.to_string().contains("100000"), "{err}");
}

#[tokio::test]
async fn image_host_off_the_allow_list_is_refused_before_connecting() {
    let sim = sim(3).await;
    let mut s = settings(&sim);
    s.image_hosts = vec!["*.aliyuncs.com".into()];
    let c = CloudClient::new(s).unwrap();
    let face = c.get_face(&user("u-0001")).await.unwrap();
    let err = c.fetch_image(&face.image).await.unwrap_err();
    assert!(
        matches!(&err, CloudError::ImageHostNotAllowed { host } if host == "127.0.0.1"),
        "{err}"
    );
    assert!(err.to_string().contains("127.0.0.1"));
    assert_eq!(sim.request_count("/images"), 0);
}

#[tokio::test]
async fn unknown_user_is_user_gone() {
    let sim = sim(3).await;
    let c = client(&sim);
    let err = c.get_face(&user("u-9999")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::UserGone, "{err}");
    let err = c.delete_face(&user("u-9999")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::UserGone, "{err}");
}

#[tokio::test]
async fn delete_and_modify_reach_the_server_with_their_params() {
    let sim = sim(3).await;
    let c = client(&sim);
    c.delete_face(&user("u-0003")).await.unwrap();
    c.modify_user("u-0002", Some("New Name"), Some("{\"door\":1}"))
        .await
        .unwrap();
    c.modify_user("u-0001", None, None).await.unwrap();
    assert_eq!(sim.deletes(), vec![user("u-0003")]);
    let mods = sim.modifies();
    assert_eq!(mods.len(), 2);
    assert_eq!(mods[0].identity_id, "u-0002");
    assert_eq!(mods[0].name.as_deref(), Some("New Name"));
    assert_eq!(mods[0].ext_info.as_deref(), Some("{\"door\":1}"));
    assert_eq!((mods[1].name.as_deref(), mods[1].ext_info.as_deref()), (None, None));
    let err = c.get_face(&user("u-0003")).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::UserGone);
}

#[tokio::test]
async fn expire_time_changes_show_in_the_face_and_its_fingerprint() {
    let sim = sim(3).await;
    let c = client(&sim);
    let before = c.get_face(&user("u-0001")).await.unwrap();
    let at = jiff::Timestamp::from_second(1_900_000_000).unwrap();
    sim.set_expire("u-0001", Some(at));
    let after = c.get_face(&user("u-0001")).await.unwrap();
    assert_eq!(after.expire_at, Some(at));
    assert_ne!(before.fingerprint(), after.fingerprint());
}

#[tokio::test]
async fn a_replayed_request_is_rejected_by_the_fake_gateway() {
    let sim = sim(3).await;
    let body = br#"{"id":"1","version":"1.0","request":{"apiVer":"1.0.4"},"params":{"iotId":"sim-device-0001","pageNo":1,"pageSize":20}}"#;
    let md5 = doorsync::cloud::sign::content_md5(body);
    let nonce = "fixed-nonce-1";
    let custom = [("x-ca-key", KEY), ("x-ca-nonce", nonce)];
    let (sts, list) = doorsync::cloud::sign::string_to_sign(&doorsync::cloud::sign::SignInput {
        method: "POST",
        accept: "application/json",
        content_md5: &md5,
        content_type: "application/octet-stream",
        date: "",
        signed_headers: &custom,
        url: wire::PATH_ROSTER,
    });
    let sig = doorsync::cloud::sign::signature(SECRET, &sts);
    doorsync::cloud::install_crypto_provider();
    let http = reqwest::Client::new();
    let send = || {
        http.post(format!("{}{}", sim.base_url(), wire::PATH_ROSTER))
            .header("accept", "application/json")
            .header("content-type", "application/octet-stream")
            .header("content-md5", &md5)
            .header("x-ca-key", KEY)
            .header("x-ca-nonce", nonce)
            .header("x-ca-signature-headers", &list)
            .header("x-ca-signature", &sig)
            .body(body.to_vec())
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    let replay = send().await.unwrap();
    assert_eq!(replay.status(), 400);
    assert_eq!(replay.headers()["x-ca-error-message"], "Invalid Nonce");
}

#[tokio::test]
async fn simulate_cloud_verb_serves_a_working_fake_cloud() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, b"0123456789abcdef0123456789abcdef\n").unwrap();
    // The one secret reader refuses a secret others may read.
    let owner_only = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(&secret_file, owner_only).unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("doorsync"))
        .args([
            "simulate",
            "cloud",
            "--listen",
            "127.0.0.1:0",
            "--app-key",
            KEY,
            "--users",
            "21",
        ])
        .arg("--app-secret-file")
        .arg(&secret_file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base_url = line.trim().to_string();
    assert!(base_url.starts_with("http://127.0.0.1:"), "{base_url:?}");
    let mut s = CloudSettings::new(base_url, KEY, Secret::new(SECRET.to_vec()), "sim-device-0001");
    s.allow_insecure_http = true;
    let roster = CloudClient::new(s).unwrap().roster().await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(roster.unwrap().len(), 21);
}

#[tokio::test]
async fn a_server_that_repeats_a_page_fails_the_walk_instead_of_looping() {
    let sim = sim(45).await;
    sim.set_roster_ignores_page_no(true);
    let err = client(&sim).roster().await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::BadResponse, "{err}");
    assert!(err.to_string().contains("repeats"), "{err}");
    assert!(matches!(err, CloudError::RosterIncomplete { walks: 3, .. }), "{err}");
    assert_eq!(sim.request_count(wire::PATH_ROSTER), 6, "three walks of two pages");
}

#[tokio::test]
async fn seeded_random_faults_are_absorbed_by_retries() {
    let mut cfg = SimConfig::new(KEY, Secret::new(SECRET.to_vec()), 45);
    cfg.seed = 7;
    cfg.faults.server_error = 0.2;
    cfg.faults.request_limited = 0.1;
    let sim = sim_with(cfg).await;
    let mut s = settings(&sim);
    s.retry.max_attempts = 8;
    let roster = CloudClient::new(s).unwrap().roster().await.unwrap();
    assert_eq!(roster.len(), 45);
    assert!(
        sim.request_count(wire::PATH_ROSTER) > 3,
        "seed 7 should inject at least one fault"
    );
}
