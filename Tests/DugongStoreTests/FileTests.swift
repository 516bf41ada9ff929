@testable import DugongStore
import Foundation
import Glibc
import Testing

@Suite("Files")
struct FileTests {
    // A process that started with a standard stream closed gives that number to the next file
    // it opens; a store file there would receive whatever the process writes to the stream.
    @Test func aStoreFileNeverTakesTheNumberOfAStandardStream() throws {
        // Stdin is lent for the test: put back at the lowest free number, 0 unless another test
        // took it meanwhile (a `dup2` would close that test's file).
        let saved = dup(STDIN_FILENO)
        try #require(saved >= 0)
        close(STDIN_FILENO)
        defer {
            if fcntl(STDIN_FILENO, F_GETFD) == -1 { _ = fcntl(saved, F_DUPFD, 0) }
            close(saved)
        }
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
    }
}
