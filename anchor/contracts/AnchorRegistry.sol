// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title AnchorRegistry
/// @notice Records Merkle tree checkpoints of evidence ledgers on chain.
/// @dev Each ledger (a bytes32 id) keeps its own append-only series of checkpoints,
///      keyed by tree size. A checkpoint commits to every record before it, so one
///      anchor covers all earlier records. Tree sizes must strictly increase per ledger:
///      a replayed or stale anchor reverts, so history on chain can only grow.
///      Only accounts the admin has authorized may anchor. Errors are plain reason
///      strings (no custom errors) so that any client can decode them.
contract AnchorRegistry {
    /// @notice One anchored checkpoint: the tree root and where it landed on chain.
    struct Anchor {
        bytes32 root;
        uint64 blockNumber;
        uint64 timestamp;
    }

    /// @notice The account that grants and revokes the right to anchor.
    address public admin;

    /// @notice Whether an account may call `anchor`.
    mapping(address => bool) public isAnchorer;

    /// @dev ledger id => tree size => anchored checkpoint.
    mapping(bytes32 => mapping(uint64 => Anchor)) private anchors;

    /// @dev ledger id => largest tree size anchored so far (0 if none).
    mapping(bytes32 => uint64) private latestSize;

    /// @notice A checkpoint of `ledger` with `size` leaves and Merkle `root` was anchored.
    event Anchored(bytes32 indexed ledger, uint64 indexed size, bytes32 root, address indexed anchorer);

    /// @notice The admin granted (`allowed` true) or revoked the right to anchor.
    event AnchorerSet(address indexed account, bool allowed);

    /// @notice The admin role moved from `previous` to `next`.
    event AdminTransferred(address indexed previous, address indexed next);

    modifier onlyAdmin() {
        require(msg.sender == admin, "only the admin");
        _;
    }

    /// @notice The deployer becomes the admin and is authorized to anchor.
    constructor() {
        admin = msg.sender;
        emit AdminTransferred(address(0), msg.sender);
        isAnchorer[msg.sender] = true;
        emit AnchorerSet(msg.sender, true);
    }

    /// @notice Anchor the checkpoint (`size`, `root`) of `ledger`.
    /// @dev Reverts unless the caller is authorized, size and root are non-zero and
    ///      size is larger than the ledger's latest anchored size.
    /// @param ledger The ledger id.
    /// @param size The checkpoint's tree size (number of leaves).
    /// @param root The checkpoint's Merkle tree root.
    function anchor(bytes32 ledger, uint64 size, bytes32 root) external {
        require(isAnchorer[msg.sender], "not an authorized anchorer");
        require(size != 0, "tree size must be positive");
        require(root != bytes32(0), "root must be non-zero");
        require(size > latestSize[ledger], "tree size must increase");

        anchors[ledger][size] = Anchor(root, uint64(block.number), uint64(block.timestamp));
        latestSize[ledger] = size;
        emit Anchored(ledger, size, root, msg.sender);
    }

    /// @notice Grant (`allowed` true) or revoke the right of `account` to anchor.
    function setAnchorer(address account, bool allowed) external onlyAdmin {
        isAnchorer[account] = allowed;
        emit AnchorerSet(account, allowed);
    }

    /// @notice Hand the admin role to `next`. Does not change who may anchor.
    function transferAdmin(address next) external onlyAdmin {
        require(next != address(0), "admin must be non-zero");
        emit AdminTransferred(admin, next);
        admin = next;
    }

    /// @notice The checkpoint of `ledger` anchored at tree `size`; all zeros if none.
    function getAnchor(bytes32 ledger, uint64 size)
        external
        view
        returns (bytes32 root, uint64 blockNumber, uint64 timestamp)
    {
        Anchor storage a = anchors[ledger][size];
        return (a.root, a.blockNumber, a.timestamp);
    }

    /// @notice The latest checkpoint anchored for `ledger`; all zeros if none.
    function latest(bytes32 ledger)
        external
        view
        returns (uint64 size, bytes32 root, uint64 blockNumber, uint64 timestamp)
    {
        size = latestSize[ledger];
        Anchor storage a = anchors[ledger][size];
        return (size, a.root, a.blockNumber, a.timestamp);
    }
}
