# No request's call reaches Redis before the connection's own preamble
# (AUTH, SELECT, FUNCTION LOAD) has been answered.  A Redis that accepts
# slowly (frozen, its accept queue full) makes the connect take many turns
# of nginx's loop; posts made meanwhile wait for the link, bounded by
# whatsapp_redis_timeout, and then land in the configured database.  Were
# they sent as soon as the socket was there, they would run before SELECT,
# in database 0, and be answered 200.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new;
$t->start_redis('--tcp-backlog', 1);

# the function is there already, as another nginx left it: an early call
# would not even fail, it would run in database 0
open my $fh, '<', 'redis/wa_ingest.lua' or die "redis/wa_ingest.lua: $!";
my $lua = do { local $/; <$fh> };
is $t->redis('FUNCTION', 'LOAD', 'REPLACE', $lua), 'wa_ingest_3',
    'the ingest function is loaded';

# frozen, with its accept queue full: a new connect waits for its SYN to
# be sent again once Redis is resumed
$t->freeze('redis');
my @fill;
for (1 .. 8) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $t->redis_port,
                                  Proto => 'tcp', Timeout => 0.3);
    last unless $s;
    push @fill, $s;
}
note scalar(@fill) . ' connections fill the accept queue';

$t->start_nginx(no_wait => 1, redis_timeout => '8s',
                http => '    whatsapp_redis_database 1;');

# four posts while nginx's worker is still connecting
my %kid;
for my $n (1 .. 4) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $r = $t->post(messages_body(
            messages => [ text_message("wamid.PRE$n", "hi $n") ]));
        POSIX::_exit($r->{status} == 200 ? 0 : $r->{status} == 503 ? 1 : 2);
    }
    $kid{$pid} = $n;
}

# nginx has read the four requests, and answers none yet
ok $t->wait_for(sub { WaTest::received_all($t->port, 4) }, 30),
    'the four posts reached nginx';
my $waiting = grep { waitpid($_, WNOHANG) == 0 } keys %kid;
is $waiting, 4, 'the posts wait while the connection is being made';

$t->thaw('redis');
close $_ for @fill;

my %status;
for my $pid (keys %kid) {
    waitpid $pid, 0;
    $status{ $kid{$pid} } = $? >> 8;
}

my $ok = grep { $status{$_} == 0 } keys %status;
is $ok, 4, 'all four answered 200 once the link was up'
    or diag explain \%status;

my @db = map { scalar $t->redis('-n', $_, 'XLEN', 'wa:messages') // 0 } 0, 1;
is $db[0], 0, 'nothing written to database 0';
is $db[1], $ok, 'every event answered 200 is in database 1';

like $t->error_log,
    qr/preamble(?s:.*)connected to \S+, database 1, function loaded/,
    'the log says when the link is up';

done_testing;
