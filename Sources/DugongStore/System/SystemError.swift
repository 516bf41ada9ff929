import Glibc

/// A system call failed: which call, on which path, and the `errno` it set.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The C function that failed, e.g. `"fdatasync"`.
    public let call: String
    /// The file or directory it was called on.
    public let path: String
    /// The `errno` value.
    public let code: Int32

    public var description: String {
        // (Not a call that failed: a store file found to be a FIFO, a device or a socket.)
        if call == Self.notARegularFile { return "\(path) is not a regular file (a FIFO, a device or a socket): a store's files are regular files" }
        return "\(call)(\(path)) failed: \(String(cString: strerror(code))) (errno \(code))"
    }

    /// The ``call`` of the error for a store file that opened but is not a regular file (its
    /// ``code`` is `EINVAL`).
    static let notARegularFile = "open (not a regular file)"
}

/// Runs a system call, retrying on `EINTR`. `EBADF` and `EFAULT` are programmer errors and trap;
/// any other failure is thrown as a ``SystemError``.
@discardableResult
func retryingOnInterrupt<T: BinaryInteger>(
    _ call: String, _ path: String, _ body: () -> T
) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code == EINTR { continue }
        precondition(code != EBADF && code != EFAULT, "\(call)(\(path)): \(String(cString: strerror(code)))")
        throw SystemError(call: call, path: path, code: code)
    }
}
