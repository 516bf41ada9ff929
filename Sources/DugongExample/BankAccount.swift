import Dugong

// The bank-account example: the README shows this file as it is.

struct AccountOpened: DomainEvent {
    static let eventType = "AccountOpened"
    var owner: String
}

struct MoneyDeposited: DomainEvent {
    static let eventType = "MoneyDeposited"
    var amount: Int
}

struct MoneyWithdrawn: DomainEvent {
    static let eventType = "MoneyWithdrawn"
    var amount: Int
}

struct AccountClosed: DomainEvent {
    static let eventType = "AccountClosed"
}

/// What a bank account refuses to do.
public enum BankAccountError: Error, Equatable {
    case invalidAmount(Int)
    case insufficientFunds(balance: Int, requested: Int)
    case balanceNotZero(Int)
}

extension BankAccountError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .invalidAmount(let cents): "invalid amount: \(cents) cents"
        case .insufficientFunds(let balance, let requested):
            "insufficient funds: balance \(balance) cents, requested \(requested) cents"
        case .balanceNotZero(let balance): "cannot close an account holding \(balance) cents"
        }
    }
}

/// A bank account: opened by an owner, money in and out in cents, never below zero, closed
/// only when empty. Its state is `Codable`, so it can be snapshotted (every 10 events).
public struct BankAccount: SnapshottableAggregate {
    public static let origin = "bank"
    public static let aggregateType = "BankAccount"
    public static let eventTypes: [any DomainEvent.Type] = [
        AccountOpened.self, MoneyDeposited.self, MoneyWithdrawn.self, AccountClosed.self,
    ]

    public private(set) var owner = ""
    public private(set) var balance = 0
    public private(set) var isClosed = false
    public var isDeleted: Bool { isClosed }

    public init() {}

    // Appliers: the only code that changes state.
    public mutating func apply(_ event: any DomainEvent) {
        switch event {
        case let opened as AccountOpened: owner = opened.owner
        case let deposit as MoneyDeposited: balance += deposit.amount
        case let withdrawal as MoneyWithdrawn: balance -= withdrawal.amount
        case is AccountClosed: isClosed = true
        default: break
        }
    }

    // Commands: validate, then return the events to stage.
    public func open(owner: String) throws -> [any DomainEvent] {
        [AccountOpened(owner: owner)]
    }

    public func deposit(_ amount: Int) throws -> [any DomainEvent] {
        guard amount > 0 else { throw BankAccountError.invalidAmount(amount) }
        return [MoneyDeposited(amount: amount)]
    }

    public func withdraw(_ amount: Int) throws -> [any DomainEvent] {
        guard amount > 0 else { throw BankAccountError.invalidAmount(amount) }
        guard amount <= balance else {
            throw BankAccountError.insufficientFunds(balance: balance, requested: amount)
        }
        return [MoneyWithdrawn(amount: amount)]
    }

    public func close() throws -> [any DomainEvent] {
        guard balance == 0 else { throw BankAccountError.balanceNotZero(balance) }
        return [AccountClosed()]
    }
}
