@testable import DugongStore
import DugongTesting
import Foundation
import Glibc
import Testing

@Suite("Files")
struct FileTests {
    // A black-box review: a FIFO in place of a store file was reported as "open (not a regular
    // file)(…) failed: Invalid argument (errno 22)", an errno no call set.
    @Test func aStoreFileThatIsAFIFOIsSaidToBeOne() async throws {
        let directory = TemporaryDirectory("fifo")
        defer { directory.remove() }
        let writer = try Fixture.open(directory)
        try await writer.append(Fixture.events(1), to: "s/1")
        writer.close()
        let head = directory.file("dugong.head")
        try FileManager.default.removeItem(atPath: head)
        #expect(mkfifo(head, 0o600) == 0)
        var options = EventLog.Options()
        options.readOnly = true
        #expect {
            try EventLog.open(at: directory.path, options: options).close()
        } throws: { error in
            "\(error)".contains("\(head) is not a regular file (a FIFO, a device or a socket)") && !"\(error)".contains("errno")
        }
    }

    // A process that started with a standard stream closed gives that number to the next file
    // it opens; a store file there would receive whatever the process writes to the stream.
    //
    // The check runs in a child process of this test binary, alone: closing stdin here lent
    // descriptor 0 to other tests running meanwhile (a CLI test's output file took it, stdin
    // was not put back, and later a command's output went to its input file: found by a full
    // run, where `read-all` printed nothing).
    @Test func aStoreFileNeverTakesTheNumberOfAStandardStream() throws {
        if ProcessInfo.processInfo.environment[Self.childVariable] == "1" {
            close(STDIN_FILENO)
            let directory = TemporaryDirectory("standard-streams")
            defer { directory.remove() }
            try directory.create()
            let file = try File(path: directory.file("segment"), flags: O_RDWR | O_CREAT)
            #expect(file.descriptor >= File.lowestDescriptor)
            let copy = try file.duplicate()
            #expect(copy.descriptor >= File.lowestDescriptor)
            #expect(fcntl(file.descriptor, F_GETFD) & FD_CLOEXEC != 0 && fcntl(copy.descriptor, F_GETFD) & FD_CLOEXEC != 0)
            try Array("bytes".utf8).withUnsafeBytes { try file.write($0, at: 0) }
            #expect(try file.size() == 5)
            return
        }
        let child = Process()
        let output = Pipe()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["--testing-library", "swift-testing", "--filter", "aStoreFileNeverTakesTheNumberOfAStandardStream"]
        child.environment = ProcessInfo.processInfo.environment.merging([Self.childVariable: "1"]) { $1 }
        child.standardOutput = output
        child.standardError = output
        try child.runWhenFewFilesAreOpen()
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        #expect(child.terminationStatus == 0 && printed.contains("1 test"), "\(printed)")
    }

    static let childVariable = "DUGONG_TEST_WITH_STDIN_CLOSED"
}
