# the worker's command line: --help, bad options, environment variables,
# SIGHUP reopening the log
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;

# acl => 0: other stream prefixes than the ACL users' (test-acl)
my $t = WaTest->new(acl => 0);
my $bin = File::Spec->rel2abs($t->{worker_bin});

my $help = `timeout 10 $bin --help 2>&1`;
is $? >> 8, 0, '--help exits 0';
for my $flag (qw(redis redis-password-file redis-db prefix group consumer batch
                 claim-idle-ms max-deliveries max-len token-file rate)) {
    like $help, qr/--\Q$flag\E\b/, "--help lists --$flag";
}
like $help, qr/WA_REDIS\b/, 'and the environment variables';

my $out = `timeout 10 $bin --batch zero 2>&1`;
is $? >> 8, 2, 'a bad number: exit 2';
like $out, qr/--batch.*zero/, 'naming the option';
$out = `timeout 10 $bin --rate 5000 2>&1`;
like $out, qr/--rate/, 'a rate over 1000 is refused';
$out = `timeout 10 $bin --no-such 2>&1`;
is $? >> 8, 2, 'an unknown option: exit 2';

$out = `timeout 10 $bin --redis-db 70000 2>&1`;
like $out, qr/--redis-db: "70000" is not a number from 0 to 65535/,
    'a number out of range names the range';
$out = `timeout 10 $bin --business-hours 9-25 2>&1`;
is $? >> 8, 2, 'bad business hours: exit 2';
my $long = 'p' x 161;
$out = `timeout 10 $bin --prefix $long 2>&1`;
is $? >> 8, 2, 'a prefix over 160 bytes: exit 2';
like $out, qr/--prefix is longer than 160 bytes/, '... saying so';

# docs/worker.md's table is the one the binary prints
my $md = `timeout 10 $bin --help-markdown`;
is $? >> 8, 0, '--help-markdown exits 0';
like $md, qr/^\| `--rate` \| `WA_RATE` \| `80` \|/m, 'a row per option';
open my $doc, '<', 'docs/worker.md' or die "docs/worker.md: $!";
my ($table) = do { local $/; <$doc> } =~ /^## Options\n\n((?:\|.*\n)+)/m;
is $table, $md, 'docs/worker.md shows every option as the binary has it';

$t->write_file('public-token', "x\n", 0644);
$out = `timeout 10 $bin --token-file ${\ $t->dir}/public-token 2>&1`;
like $out, qr/world-readable/, 'a world-readable token file is refused';

# environment variables, overridden by flags
$t->start_redis;
{
    local $ENV{WA_PREFIX} = 'envp';
    local $ENV{WA_CONSUMER} = 'from-env';
    $t->start_worker(consumer => 'w1');
}
ok $t->wait_for(sub { $t->redis('EXISTS', 'envp:messages') }),
    'WA_PREFIX used';
ok $t->wait_for(sub { $t->redis('EXISTS', 'envp:worker:w1') }, 30),
    'the --consumer flag wins over WA_CONSUMER';

# SIGHUP: the log is reopened (logrotate moved it away)
my $log = $t->dir . '/worker-w1.log';
rename $log, "$log.1" or die;
kill 'HUP', $t->{pids}{'worker-w1'};
ok $t->wait_for(sub { -s $log && $t->worker_log =~ /log reopened/ }),
    'SIGHUP: a new log file';
ok $t->alive('worker-w1'), 'still running';

done_testing;
