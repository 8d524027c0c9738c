// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {TRNToken} from "./TRNToken.sol";

/// @title MintThrottleController
/// @notice The only minter of TRN. Holders of MINTER_ROLE (the settlement contract)
///         mint through it; it caps how much can be minted per throttle epoch
///         (a fixed-length time window counted from deployment), and a guardian
///         can pause all minting.
/// @dev Roles: DEFAULT_ADMIN_ROLE (governance) grants roles, changes the cap and
///      unpauses; GUARDIAN_ROLE pauses; MINTER_ROLE mints.
contract MintThrottleController is AccessControl, Pausable {
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    /// @notice The TRN token, deployed by this contract's constructor.
    TRNToken public immutable token;
    /// @notice Length of one throttle epoch, in seconds.
    uint64 public immutable epochLength;
    /// @notice Timestamp at which throttle epoch 0 starts (deployment time).
    uint64 public immutable genesis;
    /// @notice Maximum amount (in token base units) mintable in one throttle epoch.
    uint256 public epochCap;
    /// @notice Amount minted so far in each throttle epoch.
    mapping(uint256 epoch => uint256 amount) public mintedInEpoch;

    event Minted(uint256 indexed epoch, address indexed to, uint256 amount, address indexed minter);
    event EpochCapChanged(uint256 oldCap, uint256 newCap);

    error MintCapExceeded(uint256 epoch, uint256 requested, uint256 remaining);
    error ZeroAddress();
    error ZeroEpochLength();

    constructor(address admin, address guardian, uint64 epochLength_, uint256 epochCap_) {
        if (admin == address(0) || guardian == address(0)) revert ZeroAddress();
        if (epochLength_ == 0) revert ZeroEpochLength();
        epochLength = epochLength_;
        genesis = uint64(block.timestamp);
        epochCap = epochCap_;
        token = new TRNToken(address(this));
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GUARDIAN_ROLE, guardian);
        emit EpochCapChanged(0, epochCap_);
    }

    /// @notice The current throttle epoch number.
    function currentEpoch() public view returns (uint256) {
        return (block.timestamp - genesis) / epochLength;
    }

    /// @notice How much can still be minted in the current throttle epoch.
    function remainingInCurrentEpoch() external view returns (uint256) {
        uint256 minted = mintedInEpoch[currentEpoch()];
        return minted >= epochCap ? 0 : epochCap - minted;
    }

    /// @notice Mint `amount` TRN to `to`, counted against the current epoch's cap.
    /// @dev Reverts with MintCapExceeded if the epoch's cap would be exceeded.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) whenNotPaused {
        uint256 epoch = currentEpoch();
        uint256 minted = mintedInEpoch[epoch];
        uint256 remaining = minted >= epochCap ? 0 : epochCap - minted;
        if (amount > remaining) revert MintCapExceeded(epoch, amount, remaining);
        mintedInEpoch[epoch] = minted + amount;
        token.mint(to, amount);
        emit Minted(epoch, to, amount, msg.sender);
    }

    /// @notice Change the per-epoch cap (takes effect immediately, current epoch included).
    function setEpochCap(uint256 newCap) external onlyRole(DEFAULT_ADMIN_ROLE) {
        emit EpochCapChanged(epochCap, newCap);
        epochCap = newCap;
    }

    /// @notice Stop all minting. Guardian only.
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _pause();
    }

    /// @notice Resume minting. Governance (admin) only.
    function unpause() external onlyRole(DEFAULT_ADMIN_ROLE) {
        _unpause();
    }
}
