import Foundation
import Glibc

/// A plain HTTP/1.1 client over a socket, on a thread of its own (never blocking the tests'
/// concurrency threads): any method, any `Host` header, the raw answer.
enum HTTPClient {
    struct Answer: Sendable {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Sends one request (`Connection: close`) and reads the answer to its end, or until
    /// `until` appears in it (then the connection is closed: a stream of server-sent events).
    /// `answering` is called once, when the answer's first bytes arrive.
    static func send(
        port: Int, _ target: String, host: String? = nil, headers: [String: String] = [:], until: String? = nil, address: String = "127.0.0.1",
        answering: (@Sendable () -> Void)? = nil
    ) async throws -> Answer {
        try await send(port: port, "GET", target, host: host, headers: headers, until: until, address: address, answering: answering)
    }

    static func send(
        port: Int, _ method: String, _ target: String, host: String? = nil, headers: [String: String] = [:], body: String = "",
        until: String? = nil, address: String = "127.0.0.1", answering: (@Sendable () -> Void)? = nil
    ) async throws -> Answer {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(
                    with: Result {
                        try exchange(
                            port: port, method, target, host: host, headers: headers, body: body, until: until, address: address,
                            answering: answering)
                    })
            }
            thread.start()
        }
    }

    private static func exchange(
        port: Int, _ method: String, _ target: String, host: String?, headers: [String: String], body: String, until: String?,
        address connectTo: String, answering: (@Sendable () -> Void)?
    ) throws -> Answer {
        let isIPv6 = connectTo.contains(":")
        let socket = Glibc.socket(isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(socket) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected: Int32
        if isIPv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, connectTo, &address.sin6_addr) == 1 else { throw Failure(description: "not an IPv6 address: \(connectTo)") }
            connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr(connectTo)
            connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard connected == 0 else { throw Failure(description: "connect to port \(port): errno \(errno)") }
        var request = "\(method) \(target) HTTP/1.1\r\nHost: \(host ?? "127.0.0.1:\(port)")\r\nConnection: close\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        let content = Array(body.utf8)
        request += method == "POST" || method == "PUT" || method == "PATCH" || !content.isEmpty ? "Content-Length: \(content.count)\r\n\r\n" : "\r\n"
        request += body
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
            throw Failure(description: "send: errno \(errno)")
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        // A stream that keeps sending (a live tail's keep-alive comments) never times out a
        // read: the whole answer has a minute.
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            guard ContinuousClock.now < deadline else {
                throw Failure(description: "\(method) \(target): no end\(until.map { " and no '\($0)'" } ?? "") within 60 s; got \(String(decoding: received.suffix(300), as: UTF8.self))")
            }
            let count = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { continue }  // the 5 s receive timeout: look at the deadline
                throw Failure(description: "recv: errno \(errno) after \(received.count) bytes")
            }
            if count == 0 { break }
            if received.isEmpty { answering?() }
            received += buffer[0..<count]
            if let until, String(decoding: received, as: UTF8.self).contains(until) { break }
            if let length = contentLength(received), let head = headEnd(received), received.count - head >= length { break }
        }
        let text = String(decoding: received, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw Failure(description: "no answer head in \(text.prefix(200))") }
        let head = text[..<split.lowerBound].components(separatedBy: "\r\n")
        guard let statusLine = head.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else {
            throw Failure(description: "no status in \(head.first ?? "")")
        }
        var fields: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var answer = String(text[split.upperBound...])
        if fields["transfer-encoding"] == "chunked", until == nil { answer = unchunked(answer) }
        return Answer(status: status, headers: fields, body: answer)
    }

    /// Where the body starts, once the head is in.
    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4) where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index + 4
        }
        return nil
    }

    /// The head's Content-Length, once the head is in (some servers keep the connection open
    /// despite `Connection: close`).
    private static func contentLength(_ bytes: [UInt8]) -> Int? {
        guard let end = headEnd(bytes) else { return nil }
        for line in String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" { return Int(parts[1].trimmingCharacters(in: .whitespaces)) }
        }
        return nil
    }

    /// A chunked body's data (parsed as bytes: "\r\n" is one `Character`, which a `String`
    /// parse stepping over it by two characters also skipped the next chunk's size digit).
    private static func unchunked(_ body: String) -> String {
        let bytes = Array(body.utf8)
        var out: [UInt8] = []
        var offset = 0
        while let lineEnd = (offset..<max(offset, bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }),
            let size = Int(String(decoding: bytes[offset..<lineEnd], as: UTF8.self), radix: 16), size > 0,
            lineEnd + 2 + size <= bytes.count
        {
            out += bytes[(lineEnd + 2)..<(lineEnd + 2 + size)]
            offset = lineEnd + 2 + size + 2
        }
        return String(decoding: out, as: UTF8.self)
    }
}
