# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_shell_global_optspecs
    string join \n V/version meta= e/execute= local= metas= data-dir= stale-ok k/keep-going completions= h/help
end

function __fish_shell_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_shell_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_shell_using_subcommand
    set -l cmd (__fish_shell_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c shell -n "__fish_shell_needs_command" -l meta -d 'Meta servers, host:port[,host:port...]' -r
complete -c shell -n "__fish_shell_needs_command" -s e -l execute -d 'Run these \';\'-separated commands as a script and exit' -r
complete -c shell -n "__fish_shell_needs_command" -l local -d 'Start an embedded cluster of 1 meta server and N replica servers (default 3)' -r
complete -c shell -n "__fish_shell_needs_command" -l metas -d 'With --local, start M meta servers as a Raft group (default 1: one alone)' -r
complete -c shell -n "__fish_shell_needs_command" -l data-dir -d 'Keep the embedded cluster\'s data in DIR instead of a temporary directory' -r -F
complete -c shell -n "__fish_shell_needs_command" -l completions -d 'Print the completion script for SHELL (bash, zsh, fish, ...)' -r -f -a "bash\t''
elvish\t''
fish\t''
powershell\t''
zsh\t''"
complete -c shell -n "__fish_shell_needs_command" -s V -l version -d 'Print the version'
complete -c shell -n "__fish_shell_needs_command" -l stale-ok -d 'Let any meta server answer nodes, ls, app and cluster_info from its own copy of the state (liveness unknown)'
complete -c shell -n "__fish_shell_needs_command" -s k -l keep-going -d 'In scripts, run the rest after a failure and exit with the first failure\'s code'
complete -c shell -n "__fish_shell_needs_command" -s h -l help -d 'Print help'
complete -c shell -n "__fish_shell_needs_command" -f -a "help" -d 'List the verbs, or print one verb\'s help page'
complete -c shell -n "__fish_shell_needs_command" -f -a "version" -d 'Print the shell\'s version'
complete -c shell -n "__fish_shell_needs_command" -f -a "exit" -d 'Leave the shell'
complete -c shell -n "__fish_shell_needs_command" -f -a "cluster_info" -d 'The output flags most listing verbs share: `-j` and `-o FILE`'
complete -c shell -n "__fish_shell_needs_command" -f -a "nodes" -d 'The output flags most listing verbs share: `-j` and `-o FILE`'
complete -c shell -n "__fish_shell_needs_command" -f -a "ls" -d 'The output flags most listing verbs share: `-j` and `-o FILE`'
complete -c shell -n "__fish_shell_needs_command" -f -a "app" -d 'The output flags most listing verbs share: `-j` and `-o FILE`'
complete -c shell -n "__fish_shell_needs_command" -f -a "create" -d 'Create a table and place its replicas on ALIVE nodes'
complete -c shell -n "__fish_shell_needs_command" -f -a "drop" -d 'Drop a table, keeping it recallable for a while'
complete -c shell -n "__fish_shell_needs_command" -f -a "recall" -d 'Bring back a dropped table'
complete -c shell -n "__fish_shell_needs_command" -f -a "rename" -d 'Rename a table'
complete -c shell -n "__fish_shell_needs_command" -f -a "get_app_envs" -d 'Show the environment variables of the table in use'
complete -c shell -n "__fish_shell_needs_command" -f -a "set_app_envs" -d 'Set environment variables of the table in use'
complete -c shell -n "__fish_shell_needs_command" -f -a "del_app_envs" -d 'Delete environment variables of the table in use'
complete -c shell -n "__fish_shell_needs_command" -f -a "clear_app_envs" -d 'Delete all (or a prefix\'s) environment variables of the table in use'
complete -c shell -n "__fish_shell_needs_command" -f -a "get_meta_level" -d 'Print the meta level (and the level in force while auto-frozen)'
complete -c shell -n "__fish_shell_needs_command" -f -a "set_meta_level" -d 'Set the meta level: what the meta server may change'
complete -c shell -n "__fish_shell_needs_command" -f -a "balance" -d 'Move one replica or primary role: move_pri, copy_pri, copy_sec'
complete -c shell -n "__fish_shell_needs_command" -f -a "propose" -d 'Send one manual configuration change for a partition'
complete -c shell -n "__fish_shell_needs_command" -f -a "ddd_diagnose" -d 'The output flags most listing verbs share: `-j` and `-o FILE`'
complete -c shell -n "__fish_shell_needs_command" -f -a "decommission" -d 'The output flags most listing verbs share: `-j` and `-o FILE`'
complete -c shell -n "__fish_shell_needs_command" -f -a "decommission_status" -d 'The output flags most listing verbs share: `-j` and `-o FILE`'
complete -c shell -n "__fish_shell_needs_command" -f -a "cancel_decommission" -d 'Return decommissioning nodes to NORMAL; what moved stays moved'
complete -c shell -n "__fish_shell_needs_command" -f -a "drop_node" -d 'Forget a dead or decommissioned node at once'
complete -c shell -n "__fish_shell_needs_command" -f -a "wait" -d 'Wait until every partition is healthy, or the cluster is balanced'
complete -c shell -n "__fish_shell_needs_command" -f -a "remote_command" -d 'Which processes a remote command goes to'
complete -c shell -n "__fish_shell_needs_command" -f -a "server_info" -d 'Which processes a remote command goes to'
complete -c shell -n "__fish_shell_needs_command" -f -a "meta" -d 'The meta servers\' group: status, leave a member, transfer leadership'
complete -c shell -n "__fish_shell_needs_command" -f -a "server_stat" -d 'The output flags most listing verbs share: `-j` and `-o FILE`'
complete -c shell -n "__fish_shell_needs_command" -f -a "app_stat" -d 'The output flags most listing verbs share: `-j` and `-o FILE`'
complete -c shell -n "__fish_shell_needs_command" -f -a "local" -d 'Add, stop or start replica servers of the embedded cluster (--local)'
complete -c shell -n "__fish_shell_needs_command" -f -a "sleep" -d 'Pause for SECONDS'
complete -c shell -n "__fish_shell_needs_command" -f -a "use" -d 'Choose the table data verbs work on'
complete -c shell -n "__fish_shell_needs_command" -f -a "timeout" -d 'Print or set the data operation timeout'
complete -c shell -n "__fish_shell_needs_command" -f -a "set" -d 'Write one record, with an optional TTL'
complete -c shell -n "__fish_shell_needs_command" -f -a "get" -d 'Read one record'
complete -c shell -n "__fish_shell_needs_command" -f -a "exist" -d 'Whether one record exists: True or False'
complete -c shell -n "__fish_shell_needs_command" -f -a "ttl" -d 'Seconds a record has left, or Infinite'
complete -c shell -n "__fish_shell_needs_command" -f -a "incr" -d 'Add to a record\'s integer value atomically; print the new value'
complete -c shell -n "__fish_shell_needs_command" -f -a "check_and_set" -d 'Set a record if another (or the same) passes a check, atomically'
complete -c shell -n "__fish_shell_needs_command" -f -a "del" -d 'Delete one record'
complete -c shell -n "__fish_shell_needs_command" -f -a "multi_set" -d 'Write several records of one hash key atomically'
complete -c shell -n "__fish_shell_needs_command" -f -a "multi_get" -d 'Read several records of one hash key'
complete -c shell -n "__fish_shell_needs_command" -f -a "multi_del" -d 'Delete several records of one hash key atomically'
complete -c shell -n "__fish_shell_needs_command" -f -a "hash_scan" -d 'Scan one hash key\'s records by sort-key range'
complete -c shell -n "__fish_shell_needs_command" -f -a "full_scan" -d 'Scan every record of the table in use'
complete -c shell -n "__fish_shell_needs_command" -f -a "count_data" -d 'The output flags most listing verbs share: `-j` and `-o FILE`'
complete -c shell -n "__fish_shell_using_subcommand help" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand version" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand exit" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand cluster_info" -s o -l output -d 'Write the output to FILE instead of standard output' -r -F
complete -c shell -n "__fish_shell_using_subcommand cluster_info" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand cluster_info" -s j -l json -d 'Print JSON (typed values, documented shape) instead of tables'
complete -c shell -n "__fish_shell_using_subcommand nodes" -s s -l status -d 'Only nodes of this status' -r -f -a "all\t''
alive\t''
unalive\t''"
complete -c shell -n "__fish_shell_using_subcommand nodes" -s o -l output -d 'Write the output to FILE instead of standard output' -r -F
complete -c shell -n "__fish_shell_using_subcommand nodes" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand nodes" -s d -l detailed -d 'Add replica, primary and secondary counts per node'
complete -c shell -n "__fish_shell_using_subcommand nodes" -s a -l all -d 'Also list nodes that left the cluster (DROPPED)'
complete -c shell -n "__fish_shell_using_subcommand nodes" -s j -l json -d 'Print JSON (typed values, documented shape) instead of tables'
complete -c shell -n "__fish_shell_using_subcommand ls" -s s -l status -d 'Only tables of this status' -r -f -a "all\t''
available\t''
creating\t''
dropping\t''
dropped\t''"
complete -c shell -n "__fish_shell_using_subcommand ls" -s o -l output -d 'Write the output to FILE instead of standard output' -r -F
complete -c shell -n "__fish_shell_using_subcommand ls" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand ls" -s a -l all -d 'List tables of every status, dropped ones included'
complete -c shell -n "__fish_shell_using_subcommand ls" -s d -l detailed -d 'Add per-table partition health'
complete -c shell -n "__fish_shell_using_subcommand ls" -s j -l json -d 'Print JSON (typed values, documented shape) instead of tables'
complete -c shell -n "__fish_shell_using_subcommand app" -s o -l output -d 'Write the output to FILE instead of standard output' -r -F
complete -c shell -n "__fish_shell_using_subcommand app" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand app" -s d -l detailed -d 'Add every partition\'s configuration, replicas per node and health'
complete -c shell -n "__fish_shell_using_subcommand app" -s j -l json -d 'Print JSON (typed values, documented shape) instead of tables'
complete -c shell -n "__fish_shell_using_subcommand create" -s p -l partition_count -d 'Number of partitions' -r
complete -c shell -n "__fish_shell_using_subcommand create" -s r -l replica_count -d 'Replicas per partition' -r
complete -c shell -n "__fish_shell_using_subcommand create" -s e -l envs -d 'Table environment variables' -r
complete -c shell -n "__fish_shell_using_subcommand create" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand create" -s f -l fail_if_exist -d 'Fail if the table already exists'
complete -c shell -n "__fish_shell_using_subcommand drop" -s r -l reserve_seconds -d 'How long the dropped table stays recallable' -r
complete -c shell -n "__fish_shell_using_subcommand drop" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand recall" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand rename" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand get_app_envs" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand get_app_envs" -s j -l json -d 'Print JSON: {"app_envs": {KEY: VALUE}}'
complete -c shell -n "__fish_shell_using_subcommand set_app_envs" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand del_app_envs" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand clear_app_envs" -s p -l prefix -d 'Delete the keys that start with PREFIX' -r
complete -c shell -n "__fish_shell_using_subcommand clear_app_envs" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand clear_app_envs" -s a -l all -d 'Delete every key'
complete -c shell -n "__fish_shell_using_subcommand get_meta_level" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand set_meta_level" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand balance" -s g -l gpid -d 'The partition, app_id.pidx' -r
complete -c shell -n "__fish_shell_using_subcommand balance" -s p -l type -d 'What to do: move the primary role (no copy), copy the primary, copy a secondary' -r -f -a "move_pri\t''
copy_pri\t''
copy_sec\t''"
complete -c shell -n "__fish_shell_using_subcommand balance" -s f -l from -d 'The node the primary role or replica moves from' -r
complete -c shell -n "__fish_shell_using_subcommand balance" -s t -l to -d 'The node it moves to' -r
complete -c shell -n "__fish_shell_using_subcommand balance" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand propose" -s g -l gpid -d 'The partition, app_id.pidx' -r
complete -c shell -n "__fish_shell_using_subcommand propose" -s p -l type -d 'The change' -r -f -a "ASSIGN_PRIMARY\t''
ADD_SECONDARY\t''
DOWNGRADE_TO_SECONDARY\t''
DOWNGRADE_TO_INACTIVE\t''
REMOVE\t''"
complete -c shell -n "__fish_shell_using_subcommand propose" -s t -l target -d 'The node that executes it: the primary (ASSIGN_PRIMARY: the node itself)' -r
complete -c shell -n "__fish_shell_using_subcommand propose" -s n -l node -d 'The node affected' -r
complete -c shell -n "__fish_shell_using_subcommand propose" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand propose" -s f -l force -d 'Carry it out now instead of at the next cure round'
complete -c shell -n "__fish_shell_using_subcommand ddd_diagnose" -s g -l gpid -d 'Only this table (APP_ID) or partition (APP_ID.PIDX)' -r
complete -c shell -n "__fish_shell_using_subcommand ddd_diagnose" -l force-primary -d 'Make ADDR the primary of partition GPID (it starts empty if ADDR holds nothing)' -r
complete -c shell -n "__fish_shell_using_subcommand ddd_diagnose" -s o -l output -d 'Write the output to FILE instead of standard output' -r -F
complete -c shell -n "__fish_shell_using_subcommand ddd_diagnose" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand ddd_diagnose" -l yes -d 'Confirm a force, which may lose writes'
complete -c shell -n "__fish_shell_using_subcommand ddd_diagnose" -s j -l json -d 'Print JSON (typed values, documented shape) instead of tables'
complete -c shell -n "__fish_shell_using_subcommand decommission" -l timeout -d 'With --wait: give up after this many seconds (exit 5)' -r
complete -c shell -n "__fish_shell_using_subcommand decommission" -s o -l output -d 'Write the output to FILE instead of standard output' -r -F
complete -c shell -n "__fish_shell_using_subcommand decommission" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand decommission" -l dry-run -d 'Only run the checks and print the plan; change nothing'
complete -c shell -n "__fish_shell_using_subcommand decommission" -l wait -d 'Block until every node is DECOMMISSIONED, showing progress'
complete -c shell -n "__fish_shell_using_subcommand decommission" -l yes -d 'Confirm without being asked (needed in scripts)'
complete -c shell -n "__fish_shell_using_subcommand decommission" -s j -l json -d 'Print JSON (typed values, documented shape) instead of tables'
complete -c shell -n "__fish_shell_using_subcommand decommission_status" -s o -l output -d 'Write the output to FILE instead of standard output' -r -F
complete -c shell -n "__fish_shell_using_subcommand decommission_status" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand decommission_status" -s j -l json -d 'Print JSON (typed values, documented shape) instead of tables'
complete -c shell -n "__fish_shell_using_subcommand cancel_decommission" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand drop_node" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand drop_node" -l force -d 'Drop it even though partitions lose their last replica'
complete -c shell -n "__fish_shell_using_subcommand drop_node" -l yes -d 'Confirm without being asked (needed in scripts)'
complete -c shell -n "__fish_shell_using_subcommand wait" -l timeout -d 'Give up after this many seconds (exit code 5)' -r
complete -c shell -n "__fish_shell_using_subcommand wait" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand remote_command" -s t -l type -d 'Which servers: every meta server, every ALIVE replica server, or both' -r -f -a "all\t''
meta-server\t''
replica-server\t''"
complete -c shell -n "__fish_shell_using_subcommand remote_command" -s l -l list -d 'Exactly these servers' -r
complete -c shell -n "__fish_shell_using_subcommand remote_command" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand remote_command" -l yes -d 'Confirm a command that destroys data without being asked (needed in scripts). Goes before the command name; everything after the name goes to the server'
complete -c shell -n "__fish_shell_using_subcommand remote_command" -l force -d 'Run a destructive command even though partitions lose their last replica'
complete -c shell -n "__fish_shell_using_subcommand server_info" -s t -l type -d 'Which servers: every meta server, every ALIVE replica server, or both' -r -f -a "all\t''
meta-server\t''
replica-server\t''"
complete -c shell -n "__fish_shell_using_subcommand server_info" -s l -l list -d 'Exactly these servers' -r
complete -c shell -n "__fish_shell_using_subcommand server_info" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand meta; and not __fish_seen_subcommand_from status leave transfer_leader" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand meta; and not __fish_seen_subcommand_from status leave transfer_leader" -f -a "status" -d 'One row per member, then the voter and learner ids'
complete -c shell -n "__fish_shell_using_subcommand meta; and not __fish_seen_subcommand_from status leave transfer_leader" -f -a "leave" -d 'Remove a member from the group'
complete -c shell -n "__fish_shell_using_subcommand meta; and not __fish_seen_subcommand_from status leave transfer_leader" -f -a "transfer_leader" -d 'Hand leadership to a voter (by default the most caught-up one that is up)'
complete -c shell -n "__fish_shell_using_subcommand meta; and __fish_seen_subcommand_from status" -s j -l json -d 'Print JSON'
complete -c shell -n "__fish_shell_using_subcommand meta; and __fish_seen_subcommand_from leave" -l yes -d 'Do not ask (scripts must pass it)'
complete -c shell -n "__fish_shell_using_subcommand meta; and __fish_seen_subcommand_from leave" -l force -d 'Allow leaving an even number of voters'
complete -c shell -n "__fish_shell_using_subcommand meta; and __fish_seen_subcommand_from transfer_leader" -l to -d 'The member to lead' -r
complete -c shell -n "__fish_shell_using_subcommand server_stat" -s l -l list -d 'Exactly these replica servers (default: every ALIVE one)' -r
complete -c shell -n "__fish_shell_using_subcommand server_stat" -s i -l sample_interval_ms -d 'Sample the counters this many milliseconds apart' -r
complete -c shell -n "__fish_shell_using_subcommand server_stat" -s o -l output -d 'Write the output to FILE instead of standard output' -r -F
complete -c shell -n "__fish_shell_using_subcommand server_stat" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand server_stat" -s j -l json -d 'Print JSON (typed values, documented shape) instead of tables'
complete -c shell -n "__fish_shell_using_subcommand app_stat" -s a -l app_name -d 'Only this table' -r
complete -c shell -n "__fish_shell_using_subcommand app_stat" -s i -l sample_interval_ms -d 'Sample the counters this many milliseconds apart' -r
complete -c shell -n "__fish_shell_using_subcommand app_stat" -s o -l output -d 'Write the output to FILE instead of standard output' -r -F
complete -c shell -n "__fish_shell_using_subcommand app_stat" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand app_stat" -s j -l json -d 'Print JSON (typed values, documented shape) instead of tables'
complete -c shell -n "__fish_shell_using_subcommand local; and not __fish_seen_subcommand_from add_node stop_node start_node add_meta stop_meta start_meta logs" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand local; and not __fish_seen_subcommand_from add_node stop_node start_node add_meta stop_meta start_meta logs" -f -a "add_node" -d 'Start one more replica server'
complete -c shell -n "__fish_shell_using_subcommand local; and not __fish_seen_subcommand_from add_node stop_node start_node add_meta stop_meta start_meta logs" -f -a "stop_node" -d 'Stop a replica server at once'
complete -c shell -n "__fish_shell_using_subcommand local; and not __fish_seen_subcommand_from add_node stop_node start_node add_meta stop_meta start_meta logs" -f -a "start_node" -d 'Start a stopped replica server again'
complete -c shell -n "__fish_shell_using_subcommand local; and not __fish_seen_subcommand_from add_node stop_node start_node add_meta stop_meta start_meta logs" -f -a "add_meta" -d 'Start one more meta server, which joins the group (--metas 2 or more)'
complete -c shell -n "__fish_shell_using_subcommand local; and not __fish_seen_subcommand_from add_node stop_node start_node add_meta stop_meta start_meta logs" -f -a "stop_meta" -d 'Stop meta server ID at once'
complete -c shell -n "__fish_shell_using_subcommand local; and not __fish_seen_subcommand_from add_node stop_node start_node add_meta stop_meta start_meta logs" -f -a "start_meta" -d 'Start stopped meta server ID again'
complete -c shell -n "__fish_shell_using_subcommand local; and not __fish_seen_subcommand_from add_node stop_node start_node add_meta stop_meta start_meta logs" -f -a "logs" -d 'Show the last lines of the embedded servers\' log'
complete -c shell -n "__fish_shell_using_subcommand local; and __fish_seen_subcommand_from logs" -s n -l lines -d 'How many lines' -r
complete -c shell -n "__fish_shell_using_subcommand sleep" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand use" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand timeout" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand set" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand get" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand exist" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand exist" -s j -l json -d 'Print JSON: {"exist": true|false}'
complete -c shell -n "__fish_shell_using_subcommand ttl" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand ttl" -s j -l json -d 'Print JSON: {"found": bool, "ttl_seconds": N or null (never expires)}'
complete -c shell -n "__fish_shell_using_subcommand incr" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand incr" -s j -l json -d 'Print JSON: {"new_value": N}'
complete -c shell -n "__fish_shell_using_subcommand check_and_set" -s c -l check_sort_key -d 'The sort key of the record checked' -r
complete -c shell -n "__fish_shell_using_subcommand check_and_set" -s t -l check_type -d 'The check (Pegasus\'s check types)' -r -f -a "anything\t''
not_exist\t''
not_exist_or_empty\t''
exist\t''
not_empty\t''
match_anywhere\t''
match_prefix\t''
match_postfix\t''
bytes_less\t''
bytes_less_or_equal\t''
bytes_equal\t''
bytes_greater_or_equal\t''
bytes_greater\t''
int_less\t''
int_less_or_equal\t''
int_equal\t''
int_greater_or_equal\t''
int_greater\t''"
complete -c shell -n "__fish_shell_using_subcommand check_and_set" -s o -l check_operand -d 'The operand of the check (an integer for the int_ checks)' -r
complete -c shell -n "__fish_shell_using_subcommand check_and_set" -s s -l set_sort_key -d 'The sort key of the record set (default: the checked one)' -r
complete -c shell -n "__fish_shell_using_subcommand check_and_set" -s v -l set_value -d 'The value set' -r
complete -c shell -n "__fish_shell_using_subcommand check_and_set" -s l -l set_value_ttl_seconds -d 'The TTL of the value set, in seconds (0 = never)' -r
complete -c shell -n "__fish_shell_using_subcommand check_and_set" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand check_and_set" -s r -l return_check_value -d 'Also print the checked record\'s value'
complete -c shell -n "__fish_shell_using_subcommand check_and_set" -s j -l json -d 'Print JSON: {"set_succeed", "check_value_returned", "check_value_exist", "check_value"}'
complete -c shell -n "__fish_shell_using_subcommand del" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand multi_set" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand multi_get" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand multi_del" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand hash_scan" -s n -l max_count -d 'Print at most MAX records (default: all)' -r
complete -c shell -n "__fish_shell_using_subcommand hash_scan" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand full_scan" -s n -l max_count -d 'Print at most MAX records (default: all)' -r
complete -c shell -n "__fish_shell_using_subcommand full_scan" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand count_data" -s o -l output -d 'Write the output to FILE instead of standard output' -r -F
complete -c shell -n "__fish_shell_using_subcommand count_data" -s h -l help -d 'Print this verb\'s help page'
complete -c shell -n "__fish_shell_using_subcommand count_data" -s c -l precise -d 'Scan every record (leaving out expired ones) instead of estimating'
complete -c shell -n "__fish_shell_using_subcommand count_data" -s j -l json -d 'Print JSON (typed values, documented shape) instead of tables'
