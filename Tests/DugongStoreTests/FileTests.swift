@testable import DugongStore
import DugongTesting
import Foundation
import Glibc
import Testing

@Suite("Files")
struct FileTests {
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
