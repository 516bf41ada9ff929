@_spi(Fuzzing) import DugongStore

/// libFuzzer's entry point: every input goes to the engine's decoders and recovery, which must
/// return normally (no trap, no hang, no unbounded allocation) whatever the bytes are.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let data else { return 0 }
    Fuzzing.run(UnsafeRawBufferPointer(start: data, count: count))
    return 0
}
