//! The harness itself: a real kube-apiserver comes up and answers.

use outband_tests::control_plane::ControlPlane;

#[tokio::test]
async fn starts_a_real_apiserver_of_the_pinned_version() {
    let plane = ControlPlane::start().await.expect("control plane starts");
    assert_eq!(plane.version(), outband_tests::paths::KUBE_VERSION);
    let output = plane
        .kubectl()
        .unwrap()
        .args(["version", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(outband_tests::paths::KUBE_VERSION), "{text}");
}
