// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";

/// @title TRNToken
/// @notice The TRN ERC-20 token on the L2. New TRN can only be created by its
///         MintThrottleController, which enforces the per-epoch mint cap, the minter
///         role and the guardian's pause. The controller deploys this token in its
///         own constructor, so the link cannot be changed afterwards.
contract TRNToken is ERC20, ERC20Burnable {
    /// @notice The only address allowed to mint.
    address public immutable controller;

    error NotController(address caller);

    constructor(address controller_) ERC20("TRN Token", "TRN") {
        controller = controller_;
    }

    /// @notice Mint `amount` TRN to `to`. Only the controller may call this.
    function mint(address to, uint256 amount) external {
        if (msg.sender != controller) revert NotController(msg.sender);
        _mint(to, amount);
    }
}
