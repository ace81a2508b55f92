# ACL users with the permissions docs/redis.md gives each side, and no
# other: every payload shape through the module, applied by the worker, a
# reply sent and one refused.  Then a permission taken away, or a wrong
# password: one clear log line and 503 from the module, a clear exit
# (code 2) from the worker, and nothing appended, acknowledged or buried.
use strict;
use warnings;
use lib 't/lib';
use POSIX qw(WNOHANG);
use Test::More;
use WaTest;
use WaBody qw(text_message messages_body);
use FakeGraph;

my $t = WaTest->new(acl => 1);
my $d = $t->dir;
$t->start_redis;
$t->start_nginx;
my $graph = FakeGraph->new(dir => $d);
my $graph_url = $graph->start;
$t->write_file('graph-token', "acl-token\n", 0600);

my $users = $t->redis('ACL', 'USERS');
is_deeply [ sort grep { /^wa-/ } @$users ], [ 'wa-ingest', 'wa-relayd' ],
    'the two users of docs/redis.md';
like $t->error_log, qr/whatsapp redis: connected/, 'the module logged in';

# every payload shape, as the module's user
my @cases = $t->fixtures;
my $ok = grep { $t->post(WaTest::meta_json($_->[2]))->{status} == 200 }
         @cases;
is $ok, scalar @cases, "all $ok payload shapes answered 200";
my $events = 0;
$events += $t->xlen("wa:$_") for qw(messages statuses account);
cmp_ok $events, '>=', scalar @cases, "$events events appended";

# as the worker's user: applied, a reply sent, one refused
my $w = $t->start_worker('token-file' => "$d/graph-token",
                         'graph-url' => $graph_url);
ok $t->wait_for(sub { $t->drained }, 20), 'the worker applied them all'
    or diag $t->worker_log;
ok $t->hash('wa:contact:218374650192837:5511987650001')->{messages_in},
   'state derived';
is $t->post(messages_body(from => '5511900000009', messages => [
       text_message('wamid.acl.1', 'oi', from => '5511900000009',
                    ts => time) ]))->{status}, 200, 'a customer writes';
ok $t->wait_for(sub { $t->drained }, 10), 'applied';
$t->redis('XADD', 'wa:outbox', '*', 'phone_number_id', '106540352242922',
          'to', '5511900000009', 'message',
          '{"type":"text","text":{"body":"acl"}}');
$t->redis('XADD', 'wa:outbox', '*', 'phone_number_id', '218374650192837',
          'to', '5599000000000', 'message',
          '{"type":"text","text":{"body":"no window"}}');
ok $t->wait_for(sub { $t->xlen('wa:sent') == 1 && $t->xlen('wa:dead') == 1 },
                10), 'one reply sent, one refused (no window)'
    or diag $t->worker_log;
is $t->xlen('wa:dead'), 1, 'and nothing else buried';
unlike $t->worker_log, qr/refused the user|NOPERM/, 'no refusal';
$t->stop($w, 'TERM');

# --- the module's user without XADD --------------------------------------
$t->acl_users('wa-ingest' => '+xadd');
my $body = messages_body(messages => [ text_message('wamid.acl.2', 'x') ]);
my $before = $t->xlen('wa:messages');
my $keys = scalar @{ $t->redis('KEYS', 'wa:dedupe:*') };
my $r = $t->post($body);
is $r->{status}, 503, 'a command refused inside the ingest call: 503';
ok $t->wait_log(qr/redis answered "ERR The user executing the script can't/
                . qr/.*a permission the Redis user lacks: see docs\/redis\.md/),
   'one log line naming the missing permission';
is $t->xlen('wa:messages'), $before, 'nothing appended';
is scalar @{ $t->redis('KEYS', 'wa:dedupe:*') }, $keys,
   'no dedupe key left behind';
$t->acl_users;
is $t->post($body)->{status}, 200, 'the permission back: the redelivery 200';
cmp_ok $t->xlen('wa:messages'), '>', $before, 'and appended';

# --- the module's user with a wrong password -------------------------------
$t->write_file('redis-wa-ingest-password', 'wrong', 0600);
$t->reload_nginx;
ok $t->wait_log(qr/whatsapp redis: AUTH refused to the Redis user /
                . qr/"wa-ingest": WRONGPASS .* docs\/redis\.md/, 10),
   'a wrong password: named, with the user';
ok $t->wait_for(sub { $t->post($body)->{status} == 503 }, 30),
   'and 503 so that Meta retries';
$t->acl_users;
my $ups = connects();
$t->reload_nginx;
ok $t->wait_for(sub { connects() > $ups }, 10),
   'the right password again: connected';
# the workers of the wrong password leave as the reload has them do
my $master = $t->nginx_pid;
ok $t->wait_for(sub { my @w = `pgrep -P $master`; @w == 1 }, 10),
   'the workers of the wrong password gone';
is $t->post(messages_body(messages => [ text_message('wamid.acl.4', 'z') ]))
    ->{status}, 200, 'and 200';

# --- the worker's user without HSET (used inside the state function) --------
$t->acl_users('wa-relayd' => '+hset');
my $pending = pending();
is $t->post(messages_body(messages => [ text_message('wamid.acl.3', 'y') ]))
    ->{status}, 200, 'a new message' or diag $t->error_log;
my $dead = $t->xlen('wa:dead');
$w = $t->start_worker(consumer => 'w2');
my $code = exit_code($w, 20);
is $code, 2, 'the worker stops with exit code 2';
my @lines = grep { /refused the user/ } split /\n/, $t->worker_log('w2');
is scalar @lines, 1, 'one log line';
my $told = 'Redis refused the user "wa-relayd": (?:NOPERM|ERR The user '
         . "executing the script can't).* docs/redis.md lists what the "
         . 'worker needs; stopping';
like $lines[0], qr/$told/, 'naming the user and the refusal';
is $t->xlen('wa:dead'), $dead, 'nothing buried'
    or diag explain [ $t->stream_events('wa:dead') ];
my ($last) = grep { $_->[1]{event_id} eq 'wamid.acl.3' }
             $t->stream('wa:messages');
my $waiting = $last && (pending() > $pending
                        || cmp_id($last->[0], group('messages')
                                              ->{'last-delivered-id'}) > 0);
ok $waiting, 'nothing acknowledged: the entry waits, pending or unread'
    or diag explain [ group('messages'), $last, $t->worker_log('w2') ];

# --- the worker's user with a wrong password -------------------------------
$t->acl_users;
$t->write_file('redis-wa-relayd-password', 'wrong', 0600);
$w = $t->start_worker(consumer => 'w3');
is exit_code($w, 20), 2, 'a wrong password: exit code 2';
like $t->worker_log('w3'), qr/Redis refused the user "wa-relayd": WRONGPASS/,
     'named in the log';

# --- the rights and the password back: nothing was lost --------------------
$t->acl_users;
$t->start_worker(consumer => 'w4', 'claim-idle-ms' => 300);
ok $t->wait_for(sub { $t->drained }, 20),
   'a worker with its rights claims what was left, and drains';
is $t->hash('wa:contact:106540352242922:16505551234')->{messages_in}, 3,
   'and applies what the refused ones left (3 messages)'
    or diag explain [ group('messages'), $t->worker_log('w4'),
                      $t->redis('KEYS', 'wa:contact:*') ];
is $t->xlen('wa:dead'), $dead, 'burying nothing';

# --- a user without a password: refused at once ----------------------------
my ($rc, $out) = $t->nginx_test($t->nginx_conf(
    http => 'whatsapp_redis_user wa-ingest;'));
isnt $rc, 0, 'nginx -t: a user without a password file';
like $out,
     qr/whatsapp_redis_user "wa-ingest" needs whatsapp_redis_password_file/,
     'named';
$out = `$t->{worker_bin} --redis-user wa-relayd 2>&1`;
is $? >> 8, 2, 'wa-relayd: --redis-user without a password file';
like $out, qr/--redis-user "wa-relayd" needs --redis-password-file/, 'named';

done_testing;

sub connects {
    my $n = () = $t->error_log =~ /whatsapp redis: connected to/g;
    return $n;
}

sub exit_code {
    my ($name, $secs) = @_;
    my $pid = $t->{pids}{$name} or return -1;
    for (1 .. $secs * 20) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $t->{pids}{$name};
            return $? >> 8;
        }
        select undef, undef, undef, 0.05;
    }
    return -1;
}

sub group { $t->group("wa:$_[0]", 'wa-relayd') }
sub pending { group('messages')->{pending} // 0 }

sub cmp_id {
    my ($a, $b) = map { [ split /-/, $_ // '0-0' ] } @_;
    return $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1];
}
