#if Studio
import Dugong
import DugongExample
import DugongStore
@testable import DugongStudio
import DugongTesting
import Foundation
import Glibc
import Testing

/// Headless Chromium driven through chromedriver's W3C WebDriver protocol (JSON over HTTP).
/// `DUGONG_CHROMEDRIVER` names the chromedriver (tools/test installs Debian's chromium and
/// chromium-driver); `DUGONG_SCREENSHOTS`, a directory, keeps the pages' screenshots.
struct Browser {
    static let driverPath = ProcessInfo.processInfo.environment["DUGONG_CHROMEDRIVER"]
    static let chromium = ProcessInfo.processInfo.environment["DUGONG_CHROMIUM"] ?? "/usr/bin/chromium"

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let driver: Process
    let port: Int
    let session: String
    let profile: String

    /// Starts chromedriver and a browser session (a window of 1280 × 900).
    static func start() async throws -> Browser {
        let port = try freePort()
        // The browser's profile, and its temporary files (Chromium puts some in TMPDIR): all
        // removed by stop().
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("dugong-chromium-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: profile + "/tmp", withIntermediateDirectories: true)
        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: driverPath!)
        driver.arguments = ["--port=\(port)"]
        driver.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": profile + "/tmp"]) { $1 }
        driver.standardOutput = FileHandle.nullDevice
        driver.standardError = FileHandle.nullDevice
        do {
            try driver.runWhenFewFilesAreOpen()
        } catch {
            try? FileManager.default.removeItem(atPath: profile)
            throw error
        }
        do {
            let deadline = ContinuousClock.now + .seconds(30)
            while (try? await HTTPClient.send(port: port, "/status"))?.status != 200 {
                guard ContinuousClock.now < deadline else { throw Failure(description: "chromedriver did not answer on port \(port)") }
                try await Task.sleep(for: .milliseconds(100))
            }
            let capabilities: [String: Any] = [
                "capabilities": [
                    "alwaysMatch": [
                        "browserName": "chrome",
                        "goog:chromeOptions": [
                            "binary": chromium,
                            "args": [
                                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900",
                                "--user-data-dir=\(profile)/data",
                            ],
                        ],
                    ]
                ]
            ]
            let answer = try await call(port: port, "POST", "/session", capabilities)
            guard let session = (answer as? [String: Any])?["sessionId"] as? String else {
                throw Failure(description: "no session: \(answer)")
            }
            return Browser(driver: driver, port: port, session: session, profile: profile)
        } catch {
            kill(driver.processIdentifier, SIGKILL)
            driver.waitUntilExit()
            try? FileManager.default.removeItem(atPath: profile)
            throw error
        }
    }

    func stop() async {
        // Ends the browser; chromedriver itself ignores SIGTERM here.
        _ = try? await Self.call(port: port, "DELETE", "/session/\(session)", nil)
        kill(driver.processIdentifier, SIGKILL)
        driver.waitUntilExit()
        try? FileManager.default.removeItem(atPath: profile)
    }

    /// A WebDriver command: its `value`.
    static func call(port: Int, _ method: String, _ path: String, _ body: Any?) async throws -> Any {
        let text = try body.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) } ?? ""
        let answer = try await HTTPClient.send(
            port: port, method, path, host: "127.0.0.1:\(port)", headers: body == nil ? [:] : ["Content-Type": "application/json"], body: text)
        guard let object = try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any] else {
            throw Failure(description: "\(method) \(path): \(answer.status) \(answer.body.prefix(300))")
        }
        if answer.status != 200 { throw Failure(description: "\(method) \(path): \(answer.status) \(object["value"] ?? "")") }
        return object["value"] ?? NSNull()
    }

    func call(_ method: String, _ path: String, _ body: Any? = nil) async throws -> Any {
        try await Self.call(port: port, method, "/session/\(session)" + path, body)
    }

    func open(_ url: String) async throws {
        _ = try await call("POST", "/url", ["url": url])
    }

    /// Runs JavaScript in the page; its result.
    func run(_ script: String) async throws -> Any {
        try await call("POST", "/execute/sync", ["script": script, "args": []])
    }

    /// The text of the element `selector` names, once `condition` holds for it (within 30 s).
    @discardableResult
    func text(of selector: String, when condition: (String) -> Bool = { !$0.isEmpty }) async throws -> String {
        // (60 s: in the busiest first minute of a full run, beside other load, 30 s ran out once
        // before a page's first answers were drawn.)
        let deadline = ContinuousClock.now + .seconds(60)
        var last = ""
        while ContinuousClock.now < deadline {
            let script = "const e = document.querySelector(\(JSONText.quoted(selector))); return e && !e.closest('[hidden]') ? e.innerText : null;"
            if let text = try await run(script) as? String {
                last = text
                if condition(text) { return text }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failure(description: "\(selector) never showed what was expected; last: \(last.prefix(500))")
    }

    func click(_ selector: String) async throws {
        _ = try await text(of: selector, when: { _ in true })
        let found = try await call("POST", "/element", ["using": "css selector", "value": selector])
        guard let element = (found as? [String: Any])?["element-6066-11e4-a52e-4f735466cecf"] as? String else {
            throw Failure(description: "no element \(selector)")
        }
        _ = try await call("POST", "/element/\(element)/click", [String: Any]())
    }

    /// Saves a screenshot as NAME.png in `DUGONG_SCREENSHOTS`, when set.
    func screenshot(_ name: String) async throws {
        guard let directory = ProcessInfo.processInfo.environment["DUGONG_SCREENSHOTS"] else { return }
        guard let base64 = try await call("GET", "/screenshot") as? String, let png = Data(base64Encoded: base64) else {
            throw Failure(description: "no screenshot")
        }
        try png.write(to: URL(fileURLWithPath: directory).appendingPathComponent(name + ".png"))
    }

    /// A port nothing listens on now.
    static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
        }
        guard bound else { throw Failure(description: "no free port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

@Suite("Studio in a browser", .enabled(if: Browser.driverPath != nil, "DUGONG_CHROMEDRIVER is not set: no browser"))
struct BrowserTests {
    /// Open a stream, select an event, see the state before and after it, what changed and the
    /// command context; select another; follow the live tail while events are appended, pause
    /// and resume it; an event's text that looks like markup stays text.
    @Test func aStreamAnEventItsStateAndTheLiveTail() async throws {
        let fixture = try await StudioFixture.make("browser")
        defer { fixture.remove() }
        // A stream without a category, its name and type with a space (found by a black-box
        // test: the page sent a space as "+", which names no stream; "(none)" listed the
        // streams that have a category).
        try await fixture.log.append([NewEvent(type: "Money Deposited", data: Data("{}".utf8))], to: "order 42")
        try await withStudio(fixture.log) { port, _ in
            let browser = try await Browser.start()
            do {
                let page = "http://127.0.0.1:\(port)/"
                try await browser.open(page)
                try await browser.text(of: "#categories", when: { $0.contains("(none)") })
                _ = try await browser.run("Array.from(document.querySelectorAll('#categories button')).find((b) => b.textContent.startsWith('(none)')).click();")
                let uncategorized = try await browser.text(of: "#stream-list", when: { $0.contains("order 42") })
                #expect(!uncategorized.contains("bank:BankAccount/ada"), "\(uncategorized)")
                // The count says how many matched, of the store's streams (it said "1 shown of
                // N", as if N were the matches).
                let count = try await browser.text(of: "#streams-count", when: { $0.contains("matching") })
                #expect(count.hasPrefix("1 matching, of ") && count.hasSuffix(" streams"), "\(count)")
                try await browser.click("#stream-list li[data-stream='order 42']")
                try await browser.text(of: "#events", when: { $0.contains("Money Deposited") })
                _ = try await browser.run("document.getElementById('stream-search').value = '';")
                try await browser.click("#stream-search-go")
                // The streams, then one aggregate's second event by clicking.
                try await browser.text(of: "#stream-list", when: { $0.contains("bank:BankAccount/ada") })
                try await browser.click("#stream-list li[data-stream='bank:BankAccount/ada']")
                try await browser.click("#events tr[data-version='2']")
                try await browser.text(of: "#detail-title", when: { $0.contains("bank:BankAccount/ada v2") })
                let changes = try await browser.text(of: "#changes", when: { $0.contains("balance") })
                #expect(changes.contains("0") && changes.contains("100"), "\(changes)")
                let context = try await browser.text(of: "#context", when: { $0.contains("order-17") })
                #expect(context.contains("teller-3"))
                #expect(try await browser.text(of: "#state-after").contains("\"balance\": 100"))
                #expect(try await browser.text(of: "#envelope").contains("MoneyDeposited"))
                try await browser.screenshot("aggregate-v2")
                // The next event: 100 → 70.
                try await browser.click("#events tr[data-version='3']")
                let withdrawal = try await browser.text(of: "#changes", when: { $0.contains("70") })
                #expect(withdrawal.contains("100"))
                // Time travel by version from the form.
                _ = try await browser.run("document.getElementById('travel-version').value = '1';")
                try await browser.click("#travel-go")
                try await browser.text(of: "#state-before", when: { $0.contains("no state yet") })

                // Markup in an event is shown as text, never run.
                try await browser.open(page + "#/stream/" + "raw%2F1" + "/2")
                let text = try await browser.text(of: "#detail-data", when: { $0.contains("alert") })
                #expect(text == "not json <script>alert(1)</script>")
                #expect(try await browser.run("return document.scripts.length;") as? Int == 1)
                let big = try await browser.run("return document.querySelectorAll('#events tr').length;") as? Int
                #expect(big == 3)

                // The live tail: what is appended appears; paused, nothing; resumed, what came meanwhile.
                try await browser.open(page + "#/log")
                try await browser.text(of: "#log-rows", when: { $0.contains("AccountOpened") })
                try await browser.click("#tail-toggle")
                try await browser.text(of: "#tail-state", when: { $0 == "following" })
                try await fixture.log.append([NewEvent(type: "ArrivedLive", data: Data("{}".utf8))], to: "live/1")
                try await browser.text(of: "#log-rows", when: { $0.contains("ArrivedLive") })
                try await browser.click("#tail-toggle")
                try await browser.text(of: "#tail-state", when: { $0.hasPrefix("paused") })
                try await fixture.log.append([NewEvent(type: "ArrivedWhilePaused", data: Data("{}".utf8))], to: "live/1")
                try await Task.sleep(for: .milliseconds(500))
                #expect(try await browser.text(of: "#log-rows", when: { _ in true }).contains("ArrivedWhilePaused") == false)
                try await browser.click("#tail-toggle")
                try await browser.text(of: "#log-rows", when: { $0.contains("ArrivedWhilePaused") })
                try await browser.screenshot("live-tail")
                // Paused, then a filtered page: the tail starts again from that page, keeping to
                // its filter (from a review: resumed, it went on from its old cursor into the
                // new page, and "Follow live" showed every event whatever the filter).
                try await browser.click("#tail-toggle")
                try await browser.text(of: "#tail-state", when: { $0.hasPrefix("paused") })
                try await fixture.log.append([NewEvent(type: "LeftOut", data: Data("{}".utf8))], to: "live/1")
                _ = try await browser.run("document.getElementById('filter-type').value = 'Kept';")
                try await browser.click("#filter-go")
                try await browser.text(of: "#tail-toggle", when: { $0 == "Follow live" })
                try await browser.click("#tail-toggle")
                try await browser.text(of: "#tail-state", when: { $0 == "following" })
                try await fixture.log.append(
                    [NewEvent(type: "LeftOut", data: Data("{}".utf8)), NewEvent(type: "Kept", data: Data("{}".utf8))], to: "live/1")
                let kept = try await browser.text(of: "#log-rows", when: { $0.contains("Kept") })
                #expect(!kept.contains("LeftOut") && !kept.contains("ArrivedWhilePaused"), "\(kept)")
                // "Follow live" clicked while a new filter's page is on its way follows the new
                // filter (it followed the old one, and the new page was dropped).
                try await browser.click("#filter-go")
                try await browser.text(of: "#tail-toggle", when: { $0 == "Follow live" })
                _ = try await browser.run(
                    "document.getElementById('filter-type').value = 'Second'; document.getElementById('filter-go').click(); document.getElementById('tail-toggle').click();")
                try await browser.text(of: "#tail-state", when: { $0 == "following" })
                try await fixture.log.append(
                    [NewEvent(type: "Kept", data: Data("{}".utf8)), NewEvent(type: "Second", data: Data("{}".utf8))], to: "live/1")
                let second = try await browser.text(of: "#log-rows", when: { $0.contains("Second") })
                #expect(!second.contains("Kept"), "\(second)")

                // Health and checkpoints.
                try await browser.open(page + "#/health")
                try await browser.text(of: "#health-facts", when: { $0.contains("compression") && $0.contains("frames holding events") })
                try await browser.open(page + "#/checkpoints")
                try await browser.text(of: "#checkpoint-rows", when: { $0.contains("balances") })
            } catch {
                // What the page showed when it failed (kept with DUGONG_SCREENSHOTS).
                try? await browser.screenshot("failure")
                let shown = (try? await browser.run("return document.body.innerText;") as? String) ?? ""
                await browser.stop()
                throw Browser.Failure(description: "\(error)\n--- the page said:\n\(shown.prefix(1500))")
            }
            await browser.stop()
        }
    }

    /// Off loopback the page carries the access token of its address to every request it makes,
    /// its live log's too, without a cookie: streams, events and the tail all work.
    @Test func offLoopbackThePageSendsTheAccessTokenWithoutACookie() async throws {
        let fixture = try await StudioFixture.make("browser-token")
        defer { fixture.remove() }
        try await withStudio(fixture.log, options: .init(host: "0.0.0.0")) { port, studio in
            let browser = try await Browser.start()
            do {
                try await browser.open("http://127.0.0.1:\(port)/?token=\(studio.guardian.accessToken)")
                try await browser.text(of: "#stream-list", when: { $0.contains("bank:BankAccount/ada") })
                try await browser.click("#stream-list li[data-stream='bank:BankAccount/ada']")
                try await browser.text(of: "#events", when: { $0.contains("MoneyDeposited") })
                #expect(try await browser.run("return document.cookie;") as? String == "")
                try await browser.open("http://127.0.0.1:\(port)/?token=\(studio.guardian.accessToken)#/log")
                try await browser.text(of: "#log-rows", when: { $0.contains("AccountOpened") })
                try await browser.click("#tail-toggle")
                try await browser.text(of: "#tail-state", when: { $0 == "following" })
                try await fixture.log.append([NewEvent(type: "ArrivedWithToken", data: Data("{}".utf8))], to: "live/1")
                try await browser.text(of: "#log-rows", when: { $0.contains("ArrivedWithToken") })
            } catch {
                let shown = (try? await browser.run("return document.body.innerText;") as? String) ?? ""
                await browser.stop()
                throw Browser.Failure(description: "\(error)\n--- the page said:\n\(shown.prefix(1500))")
            }
            await browser.stop()
        }
    }
}
#endif
