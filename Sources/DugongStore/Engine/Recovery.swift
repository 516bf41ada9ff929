import Foundation

/// Rebuilding the index from the segments at open, and telling a torn tail from damage.
///
/// The rules (FORMAT.md, "Recovery"):
/// - Frames are read in order; each must pass its checksum, decode, and start at or after the
///   position the previous frame ended at.
/// - In the newest segment, an invalid frame with no valid frame after it is a **torn tail**:
///   the writer died mid-write, before the frame was synced, so it was never acknowledged.
///   Everything from there to the end of the segment is zeroed and appends continue there.
/// - Any other invalid frame is **damage**: it is recorded with segment, offset and the
///   positions it held; reading those positions throws ``StoreError/corruption(segment:offset:reason:)``,
///   and the frames before and after it stay readable.
enum Recovery {
    struct Result {
        var index = StreamIndex()
        /// Where the valid frames of the last segment end: where the writer appends.
        var writeOffset = Layout.segmentHeaderSize
        /// Bytes after the last valid frame of the last segment: zeroed when repairing, left
        /// alone otherwise (0 when the tail was clean).
        var tornBytes = 0
    }

    /// Scans `segments[from...]` into `index`, the first of them from `offset` (a refresh of a
    /// read-only store continues where the last scan ended). With `repair`, a torn tail is zeroed.
    static func scan(
        _ segments: [Segment], from first: Int = 0, offset: Int = Layout.segmentHeaderSize,
        into index: StreamIndex = StreamIndex(), repair: Bool
    ) throws -> Result {
        var result = Result(index: index)
        for segmentIndex in first..<segments.count {
            let segment = segments[segmentIndex]
            let isLast = segmentIndex == segments.count - 1
            let resuming = segmentIndex == first && offset > Layout.segmentHeaderSize
            let start = segment.header.firstPosition
            if !resuming {
                if result.index.nextPosition > start {
                    throw StoreError.corruption(
                        segment: segment.name, offset: 0,
                        reason: "segment starts at position \(start), before the previous segment's end \(result.index.nextPosition)")
                }
                if result.index.nextPosition < start, segmentIndex > 0, !segment.header.followsCompactedPositions {
                    result.index.record(Damage(
                        segmentName: segment.name, offset: 0,
                        reason: "positions \(result.index.nextPosition)..<\(start) are missing before this segment",
                        positions: result.index.nextPosition..<start))
                }
                result.index.advance(to: start)
            }
            let nextSegmentStart = isLast ? nil : segments[segmentIndex + 1].header.firstPosition
            let end = try scan(
                segment, at: segmentIndex, from: resuming ? offset : Layout.segmentHeaderSize,
                nextSegmentStart: nextSegmentStart, into: &result.index)
            if isLast {
                result.writeOffset = end.offset
                if end.torn {
                    result.tornBytes = segment.capacity - end.offset
                    if repair { try segment.zero(from: end.offset) }
                }
            }
        }
        return result
    }

    private static func scan(
        _ segment: Segment, at segmentIndex: Int, from start: Int, nextSegmentStart: UInt64?, into index: inout StreamIndex
    ) throws -> (offset: Int, torn: Bool) {
        try segment.withBytes { bytes in
            var offset = start
            while true {
                var problem: String
                switch FrameReader.probe(bytes, at: offset) {
                case .endOfData:
                    return (offset, false)
                case .frame(let header):
                    guard header.firstPosition >= index.nextPosition else {
                        problem = "frame starts at position \(header.firstPosition), before \(index.nextPosition)"
                        break
                    }
                    do {
                        let records = try FrameReader.records(
                            of: header, in: bytes, at: offset, dictionary: segment.dictionary(before: offset))
                        for case .dictionary(let dictionary) in records {
                            segment.register(dictionary: dictionary, at: offset)
                        }
                        index.apply(
                            records, in: FrameLocation(segment: segmentIndex, offset: offset), length: header.totalLength,
                            rawLength: Int(header.rawLength))
                        index.advance(to: header.firstPosition)
                    } catch {
                        // The checksum holds, so the length does too: skip just this frame.
                        let first = max(header.firstPosition, index.nextPosition)
                        index.record(Damage(
                            segmentName: segment.name, offset: offset, reason: "\(error)",
                            positions: first..<(first + UInt64(header.eventCount))))
                    }
                    offset += header.totalLength
                    continue
                case .invalid(let reason):
                    problem = reason
                }
                if let (resume, header) = resynchronize(bytes, after: offset, minimumPosition: index.nextPosition) {
                    index.record(Damage(
                        segmentName: segment.name, offset: offset, reason: problem,
                        positions: index.nextPosition..<header.firstPosition))
                    offset = resume
                    continue
                }
                guard let nextSegmentStart else { return (offset, true) }
                index.record(Damage(
                    segmentName: segment.name, offset: offset, reason: problem,
                    positions: index.nextPosition..<max(index.nextPosition, nextSegmentStart)))
                return (offset, false)
            }
        }
    }

    /// The next offset after `offset` where a valid frame starts at or after `minimumPosition`.
    /// Cheap header checks come first so that scanning megabytes of garbage or zeros stays fast.
    static func resynchronize(
        _ bytes: UnsafeRawBufferPointer, after offset: Int, minimumPosition: UInt64
    ) -> (Int, FrameHeader)? {
        var candidate = offset + 1
        let last = bytes.count - Layout.frameHeaderSize
        while candidate <= last {
            defer { candidate += 1 }
            let stored = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: candidate + 4, as: UInt32.self)))
            guard stored > 0, candidate + Layout.frameHeaderSize + stored <= bytes.count,
                bytes[candidate + 12] & ~(Layout.frameCompressed | Layout.frameUsesDictionary) == 0,
                bytes[candidate + 13] == 0
            else { continue }
            let first = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: candidate + 16, as: UInt64.self))
            guard first >= minimumPosition, case .frame(let header) = FrameReader.probe(bytes, at: candidate) else { continue }
            return (candidate, header)
        }
        return nil
    }
}
