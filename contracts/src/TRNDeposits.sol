// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title TRNDeposits
/// @notice Where accounts deposit TRN on the L2 to fund their L3 balance. The TRN is moved
///         into this contract with transferFrom (approve it first) and a Deposited event is
///         emitted; the L3 node's evm_l2 transport reads that event and trn_oracle credits
///         `account` on L3, once per (transaction, log index).
///
/// Withdrawals are out of scope of this version: deposited TRN stays in this contract.
/// Spending on L3 burns it or pays it to creators, who are paid again on L2 through
/// TRNSettlement claims (minted), so returning a deposit needs an L3 -> L2 proof of the
/// remaining balance, which TRNSettlement does not carry yet.
contract TRNDeposits {
    using SafeERC20 for IERC20;

    /// @notice The TRN token.
    IERC20 public immutable token;
    /// @notice Sum of all deposits.
    uint256 public totalDeposited;

    /// @notice `amount` TRN base units credited to `account` on L3.
    event Deposited(address indexed account, uint256 amount);

    error ZeroAddress();
    error ZeroAmount();

    constructor(IERC20 token_) {
        if (address(token_) == address(0)) revert ZeroAddress();
        token = token_;
    }

    /// @notice Deposit `amount` of the caller's TRN for the caller's own L3 account.
    function deposit(uint256 amount) external {
        _deposit(msg.sender, amount);
    }

    /// @notice Deposit `amount` of the caller's TRN for `account` on L3 (e.g. a DAO funding
    ///         its treasury from a multisig).
    function depositFor(address account, uint256 amount) external {
        if (account == address(0)) revert ZeroAddress();
        _deposit(account, amount);
    }

    function _deposit(address account, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        totalDeposited += amount;
        token.safeTransferFrom(msg.sender, address(this), amount);
        emit Deposited(account, amount);
    }
}
