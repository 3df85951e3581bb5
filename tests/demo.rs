//! `portcullis demo`, as a newcomer runs it: it prints where to go and the demo
//! credentials, and those credentials sign in through the printed URL, after which the
//! demo app's API sees the user.

mod common;

use std::time::Duration;

#[tokio::test]
async fn the_printed_url_and_credentials_sign_in() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_child, lines) =
        common::spawn_with_lines(std::process::Command::new(env!("CARGO_BIN_EXE_portcullis")).args([
            "demo",
            "--port",
            &port.to_string(),
        ]));
    let mut printed = Vec::new();
    while !printed.iter().any(|l: &String| l.contains("password: ")) {
        printed.push(lines.recv_timeout(common::BOUND).expect("the demo prints its credentials"));
    }
    let field = |name: &str| printed.iter().find_map(|l| l.trim().strip_prefix(name)).map(str::to_owned).unwrap();
    let open = field("open: ");
    let (user, password) = (field("user: "), field("password: "));
    assert_eq!(open, format!("http://localhost:{port}/"));

    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(common::BOUND).build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    // The page asks for a login once the provider is loaded.
    let deadline = std::time::Instant::now() + common::BOUND;
    let login = loop {
        if let Ok(page) = http.get(format!("{base}/")).header("accept", "text/html").send().await
            && page.status() == 302
        {
            let login = page.headers()["location"].to_str().unwrap().to_owned();
            let to_idp = http.get(format!("{base}{login}")).send().await.unwrap();
            if to_idp.status() == 302 {
                break to_idp;
            }
        }
        assert!(std::time::Instant::now() < deadline, "the demo never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let tx_cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let authorize = login.headers()["location"].to_str().unwrap().to_owned();
    let idp_base = authorize.split("/oauth2/").next().unwrap().to_owned();
    let to_form = http.get(&authorize).send().await.unwrap();
    let form = format!("{idp_base}{}", to_form.headers()["location"].to_str().unwrap());
    let signed_in =
        http.post(&form).form(&[("username", user.as_str()), ("password", password.as_str())]).send().await.unwrap();
    assert_eq!(signed_in.status(), 302, "the printed credentials are accepted");
    let callback = signed_in.headers()["location"].to_str().unwrap().replace("localhost", "127.0.0.1");
    let back = http.get(&callback).header("cookie", &tx_cookie).send().await.unwrap();
    assert_eq!(back.status(), 302);
    let session: Vec<String> = back
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .filter(|c| !c.contains("-tx-"))
        .collect();
    let echo: serde_json::Value = http
        .get(format!("{base}/api/echo"))
        .header("cookie", session.join("; "))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["headers"]["x-user-name"], user.as_str(), "{echo}");
}
