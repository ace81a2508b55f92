# whatsapp_redis_wait: 200 only once a replica has the events.  A replica
# that stops acknowledging turns "appended" into 503 (the events stay on the
# primary, and Meta redelivers); once it is back, the redelivery is 200 and
# nothing is appended twice, on the primary or on the replica.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new;
my $d = $t->dir;
my $port = $t->start_redis;

# a replica of our own, beside the primary
my $rport = WaTest::free_port();
$t->spawn('replica', 'redis-server', '--port', $rport, '--bind', '127.0.0.1',
          '--save', '', '--appendonly', 'no', '--dir', $d,
          '--replicaof', '127.0.0.1', $port);
WaTest::wait_port($rport) or BAIL_OUT('no replica');
my $replica = sub {
    local $t->{redis_port} = $rport;
    return $t->redis(@_);
};
ok $t->wait_for(sub { ($t->redis('INFO', 'replication') // '')
                      =~ /slave0:.*state=online/ }, 10),
   'the replica is in sync';

# two seconds: time enough for a replica on a busy machine
$t->start_nginx(http => 'whatsapp_redis_wait 1 2s;');

my $post = sub {
    my ($id) = @_;
    return $t->post(messages_body(messages => [ text_message($id, 'w') ]));
};

is $post->('wamid.W1')->{status}, 200, 'a replica has it: 200';
is $replica->('XLEN', 'wa:messages'), 1, 'the event is on the replica';

# the replica stops: nothing acknowledges
$t->freeze('replica');
my $r = $post->('wamid.W2');
is $r->{status}, 503, 'no replica acknowledges: 503';
ok $r->{headers}{'retry-after'}, 'with Retry-After';
ok $t->wait_log(qr/whatsapp webhook: 1 events appended, but 0 replicas /
                . qr/acknowledged them within whatsapp_redis_wait's timeout/),
   'the log says why';
is $t->xlen('wa:messages'), 2, 'the event is on the primary';
is $t->status_counters->{redis_not_replicated}, 1, 'counted';

# back: Meta's redelivery is 200, and appends nothing twice
$t->thaw('replica');
ok $t->wait_for(sub { $post->('wamid.W2')->{status} == 200 }, 10),
   'the replica back: the redelivery 200';
is $t->xlen('wa:messages'), 2, 'nothing appended twice on the primary';
ok $t->wait_for(sub { $replica->('XLEN', 'wa:messages') == 2 }, 30),
   'nor on the replica';

# the directive's checks
my ($rc, $out) = $t->nginx_test($t->nginx_conf(
    http => 'whatsapp_redis_wait 1 5s;'));
isnt $rc, 0, 'a wait not shorter than whatsapp_redis_timeout';
like $out, qr/whatsapp_redis_wait's timeout must be shorter than/,
     'named';
($rc, $out) = $t->nginx_test($t->nginx_conf(
    http => 'whatsapp_redis_wait 0 100ms;'));
like $out, qr/"0" is not a number of replicas/, 'zero replicas: named';
($rc, $out) = $t->nginx_test($t->nginx_conf(
    http => 'whatsapp_redis_wait 1;'));
like $out, qr/takes "off" or the number of replicas and a timeout/,
     'a number without a timeout: named';
($rc, $out) = $t->nginx_test($t->nginx_conf(
    http => 'whatsapp_redis_wait off;'));
is $rc, 0, 'off' or diag $out;

done_testing;
