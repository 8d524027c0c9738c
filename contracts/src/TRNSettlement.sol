// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {MintThrottleController} from "./MintThrottleController.sol";

/// @title TRNSettlement
/// @notice Accepts one Merkle root of per-account TRN amounts per settlement epoch from
///         the oracle's key, together with the epoch's activity data published as
///         calldata chunks. After the data is complete and a challenge window has passed
///         without a governance veto, the root is final and accounts claim their amount
///         with a Merkle proof; claims are paid by minting TRN through the
///         MintThrottleController (this contract must hold its MINTER_ROLE).
///
/// Leaf format (OpenZeppelin StandardMerkleTree, types ["address","uint256"]):
///     leaf = keccak256(bytes.concat(keccak256(abi.encode(account, amount))))
///
/// Data hash: the epoch's data is split into `chunkCount` chunks published in order
/// with publishChunk(epoch, 0..chunkCount-1, bytes). Then
///     dataHash = keccak256(abi.encodePacked(keccak256(chunk_0), ..., keccak256(chunk_{n-1})))
/// i.e. keccak256 of the concatenation of the 32-byte chunk hashes. For chunkCount = 0
/// the data is empty and dataHash must be keccak256("") (keccak of zero bytes).
contract TRNSettlement is Pausable {
    /// @notice Largest chunk accepted, so that a publishChunk transaction (chunk +
    ///         ABI encoding + signature/RLP envelope) stays below the 128 KiB
    ///         transaction size limit of common L2 mempools.
    uint256 public constant MAX_CHUNK_SIZE = 120 * 1024;

    enum Status {
        None, // never submitted
        Pending, // submitted, not vetoed (final once data is complete and the window passed)
        Vetoed // vetoed by governance; the oracle may resubmit
    }

    enum State {
        None,
        AwaitingData, // submitted, chunks still missing
        Challengeable, // data complete, inside the challenge window
        Final, // claimable
        Vetoed
    }

    struct Epoch {
        bytes32 root;
        bytes32 dataHash;
        uint256 total; // sum of all leaf amounts
        uint256 claimed; // sum claimed so far
        uint64 submittedAt;
        uint64 readyAt; // when the last chunk was published (0 = data incomplete)
        uint32 chunkCount;
        uint32 chunksPublished;
        uint32 attempt; // 1 for the first submission, +1 per resubmission after a veto
        Status status;
    }

    MintThrottleController public immutable controller;
    /// @notice Seconds between data completion and finality.
    uint64 public immutable challengeWindow;
    /// @notice The first settlement epoch number the oracle must submit.
    uint64 public immutable firstEpoch;

    address public oracle;
    address public governance;
    address public guardian;
    /// @notice The next epoch number accepted by submitRoot (epochs are submitted in order).
    uint64 public nextEpoch;

    mapping(uint64 epoch => Epoch) private _epochs;
    /// @notice keccak256 of each published chunk of the epoch's current attempt.
    mapping(uint64 epoch => mapping(uint32 index => bytes32)) public chunkHash;
    /// @notice Whether an account has claimed its amount for an epoch.
    mapping(uint64 epoch => mapping(address account => bool)) public claimed;

    event RootSubmitted(
        uint64 indexed epoch,
        uint32 attempt,
        bytes32 root,
        uint256 total,
        bytes32 dataHash,
        uint32 chunkCount
    );
    event ChunkPublished(uint64 indexed epoch, uint32 indexed attempt, uint32 index, bytes32 chunkHash, uint256 size);
    event DataComplete(uint64 indexed epoch, uint32 attempt, bytes32 dataHash, uint64 finalAt);
    event RootVetoed(uint64 indexed epoch, uint32 attempt, address indexed by);
    event Claimed(uint64 indexed epoch, address indexed account, uint256 amount, address caller);
    event OracleChanged(address indexed oldOracle, address indexed newOracle);
    event GovernanceChanged(address indexed oldGovernance, address indexed newGovernance);
    event GuardianChanged(address indexed oldGuardian, address indexed newGuardian);

    error NotOracle(address caller);
    error NotGovernance(address caller);
    error NotGuardian(address caller);
    error ZeroAddress();
    error ZeroRoot();
    error EpochOutOfOrder(uint64 expected, uint64 given);
    error EpochNotPending(uint64 epoch);
    error EpochAlreadyFinal(uint64 epoch);
    error EpochNotFinal(uint64 epoch);
    error ChunkOutOfOrder(uint64 epoch, uint32 expected, uint32 given);
    error ChunkTooLarge(uint256 size, uint256 max);
    error EmptyChunk();
    error DataHashMismatch(uint64 epoch, bytes32 expected, bytes32 computed);
    error AlreadyClaimed(uint64 epoch, address account);
    error InvalidProof();
    error ZeroAmount();
    error ClaimExceedsTotal(uint64 epoch, uint256 total, uint256 wouldBeClaimed);

    modifier onlyOracle() {
        if (msg.sender != oracle) revert NotOracle(msg.sender);
        _;
    }

    modifier onlyGovernance() {
        if (msg.sender != governance) revert NotGovernance(msg.sender);
        _;
    }

    constructor(
        MintThrottleController controller_,
        address oracle_,
        address governance_,
        address guardian_,
        uint64 challengeWindow_,
        uint64 firstEpoch_
    ) {
        if (
            address(controller_) == address(0) || oracle_ == address(0) || governance_ == address(0)
                || guardian_ == address(0)
        ) revert ZeroAddress();
        controller = controller_;
        oracle = oracle_;
        governance = governance_;
        guardian = guardian_;
        challengeWindow = challengeWindow_;
        firstEpoch = firstEpoch_;
        nextEpoch = firstEpoch_;
        emit OracleChanged(address(0), oracle_);
        emit GovernanceChanged(address(0), governance_);
        emit GuardianChanged(address(0), guardian_);
    }

    // ------------------------------------------------------------------ oracle

    /// @notice Submit the Merkle root of `epoch`. Epochs are accepted in order
    ///         (epoch == nextEpoch), once each; a vetoed epoch may be resubmitted.
    /// @param total     sum of all amounts in the tree (claims can never exceed it)
    /// @param dataHash  keccak256 of the concatenated keccak256 of each data chunk
    /// @param chunkCount number of data chunks that publishChunk will carry
    function submitRoot(uint64 epoch, bytes32 root, uint256 total, bytes32 dataHash, uint32 chunkCount)
        external
        onlyOracle
    {
        if (root == bytes32(0)) revert ZeroRoot();
        Epoch storage e = _epochs[epoch];
        if (epoch == nextEpoch) {
            nextEpoch = epoch + 1;
        } else if (e.status != Status.Vetoed) {
            revert EpochOutOfOrder(nextEpoch, epoch);
        }
        uint32 attempt = e.attempt + 1;
        bool complete = chunkCount == 0;
        if (complete && dataHash != keccak256("")) revert DataHashMismatch(epoch, dataHash, keccak256(""));
        _epochs[epoch] = Epoch({
            root: root,
            dataHash: dataHash,
            total: total,
            claimed: 0,
            submittedAt: uint64(block.timestamp),
            readyAt: complete ? uint64(block.timestamp) : 0,
            chunkCount: chunkCount,
            chunksPublished: 0,
            attempt: attempt,
            status: Status.Pending
        });
        emit RootSubmitted(epoch, attempt, root, total, dataHash, chunkCount);
        if (complete) emit DataComplete(epoch, attempt, dataHash, uint64(block.timestamp) + challengeWindow);
    }

    /// @notice Publish chunk `index` of the epoch's activity data as calldata. Chunks
    ///         must be published in order (0, 1, ...). The data itself is not stored or
    ///         logged: verifiers read it from this transaction's input, found through the
    ///         ChunkPublished log. When the last chunk arrives the contract recomputes
    ///         dataHash and reverts on mismatch (governance can then veto the epoch).
    function publishChunk(uint64 epoch, uint32 index, bytes calldata data) external onlyOracle {
        Epoch storage e = _epochs[epoch];
        if (e.status != Status.Pending) revert EpochNotPending(epoch);
        if (index != e.chunksPublished || index >= e.chunkCount) {
            revert ChunkOutOfOrder(epoch, e.chunksPublished, index);
        }
        if (data.length == 0) revert EmptyChunk();
        if (data.length > MAX_CHUNK_SIZE) revert ChunkTooLarge(data.length, MAX_CHUNK_SIZE);

        bytes32 h = keccak256(data);
        chunkHash[epoch][index] = h;
        uint32 published = index + 1;
        e.chunksPublished = published;
        emit ChunkPublished(epoch, e.attempt, index, h, data.length);

        if (published == e.chunkCount) {
            bytes memory hashes = new bytes(uint256(published) * 32);
            for (uint32 i = 0; i < published; ++i) {
                bytes32 ci = chunkHash[epoch][i];
                assembly {
                    mstore(add(add(hashes, 32), mul(i, 32)), ci)
                }
            }
            bytes32 computed = keccak256(hashes);
            if (computed != e.dataHash) revert DataHashMismatch(epoch, e.dataHash, computed);
            e.readyAt = uint64(block.timestamp);
            emit DataComplete(epoch, e.attempt, computed, uint64(block.timestamp) + challengeWindow);
        }
    }

    // -------------------------------------------------------------- governance

    /// @notice Reject a submitted root before it becomes final. The oracle may then
    ///         resubmit the epoch (and must republish its data).
    function veto(uint64 epoch) external onlyGovernance {
        Epoch storage e = _epochs[epoch];
        if (e.status != Status.Pending) revert EpochNotPending(epoch);
        if (_isFinal(e)) revert EpochAlreadyFinal(epoch);
        e.status = Status.Vetoed;
        emit RootVetoed(epoch, e.attempt, msg.sender);
    }

    function setOracle(address newOracle) external onlyGovernance {
        if (newOracle == address(0)) revert ZeroAddress();
        emit OracleChanged(oracle, newOracle);
        oracle = newOracle;
    }

    function setGovernance(address newGovernance) external onlyGovernance {
        if (newGovernance == address(0)) revert ZeroAddress();
        emit GovernanceChanged(governance, newGovernance);
        governance = newGovernance;
    }

    function setGuardian(address newGuardian) external onlyGovernance {
        if (newGuardian == address(0)) revert ZeroAddress();
        emit GuardianChanged(guardian, newGuardian);
        guardian = newGuardian;
    }

    /// @notice Stop claims. Guardian only.
    function pause() external {
        if (msg.sender != guardian) revert NotGuardian(msg.sender);
        _pause();
    }

    /// @notice Resume claims. Governance only.
    function unpause() external onlyGovernance {
        _unpause();
    }

    // ------------------------------------------------------------------ claims

    /// @notice Pay `account` its `amount` for `epoch` (anyone may call; the TRN goes to
    ///         `account`). Once per (epoch, account); only on a final root.
    function claim(uint64 epoch, address account, uint256 amount, bytes32[] calldata proof)
        external
        whenNotPaused
    {
        Epoch storage e = _epochs[epoch];
        if (e.status != Status.Pending || !_isFinal(e)) revert EpochNotFinal(epoch);
        if (claimed[epoch][account]) revert AlreadyClaimed(epoch, account);
        if (amount == 0) revert ZeroAmount();
        bytes32 leaf = leafHash(account, amount);
        if (!MerkleProof.verifyCalldata(proof, e.root, leaf)) revert InvalidProof();
        uint256 newClaimed = e.claimed + amount;
        if (newClaimed > e.total) revert ClaimExceedsTotal(epoch, e.total, newClaimed);
        claimed[epoch][account] = true;
        e.claimed = newClaimed;
        controller.mint(account, amount);
        emit Claimed(epoch, account, amount, msg.sender);
    }

    // ------------------------------------------------------------------- views

    /// @notice The StandardMerkleTree leaf for (account, amount).
    function leafHash(address account, uint256 amount) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, amount))));
    }

    function getEpoch(uint64 epoch) external view returns (Epoch memory) {
        return _epochs[epoch];
    }

    function isFinal(uint64 epoch) external view returns (bool) {
        Epoch storage e = _epochs[epoch];
        return e.status == Status.Pending && _isFinal(e);
    }

    /// @notice Timestamp at which the epoch becomes final (0 while its data is incomplete
    ///         or if it is not pending).
    function finalAt(uint64 epoch) external view returns (uint64) {
        Epoch storage e = _epochs[epoch];
        if (e.status != Status.Pending || e.readyAt == 0) return 0;
        return e.readyAt + challengeWindow;
    }

    function epochState(uint64 epoch) external view returns (State) {
        Epoch storage e = _epochs[epoch];
        if (e.status == Status.None) return State.None;
        if (e.status == Status.Vetoed) return State.Vetoed;
        if (e.readyAt == 0) return State.AwaitingData;
        if (_isFinal(e)) return State.Final;
        return State.Challengeable;
    }

    function _isFinal(Epoch storage e) private view returns (bool) {
        return e.readyAt != 0 && block.timestamp >= uint256(e.readyAt) + challengeWindow;
    }
}
