# A sentinel given by name: nginx's resolver looks it up whenever the
# sentinels are asked, never blocking the loop, so a sentinel that moves is
# found at the next reconnect without a reload.  A DNS server of the test's
# own answers for "sentinel.test" (time to live 0) and counts the questions.
# nginx's resolver keeps an answer for its time to live (or "valid=").
use strict;
use warnings;
use lib 't/lib';
use IO::Socket::INET;
use Test::More;
use WaTest;
use WaBody qw(text_message messages_body);

plan skip_all => 'make test runs it: its Redis restarts, forgetting ACL '
                 . 'users made at run time' if $ENV{WA_REDIS_ACL};

my $t = WaTest->new(acl => 0);
my $d = $t->dir;
my $port = $t->start_redis;

my $sport = WaTest::free_port();
$t->write_file('sentinel.conf', <<"EOF2");
port $sport
bind 127.0.0.1
dir $d
sentinel monitor wa 127.0.0.1 $port 1
EOF2
$t->spawn('sentinel', 'redis-server', "$d/sentinel.conf", '--sentinel');
WaTest::wait_port($sport) or BAIL_OUT('no sentinel');

# the DNS server: one A record, 127.0.0.1, for sentinel.test
my $dns = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1',
                                LocalPort => 0) or BAIL_OUT("udp: $!");
my $dport = $dns->sockport;
my $pid = fork // BAIL_OUT('fork');
if ($pid == 0) {
    open my $log, '>>', "$d/dns.log" or die;
    $log->autoflush(1);
    while (1) {
        $dns->recv(my $q, 512) // next;
        my ($id, $flags, $qd) = unpack 'n n n', $q;
        my $name = '';
        my $i = 12;
        while ((my $len = ord substr $q, $i, 1) != 0) {
            $name .= ($name ? '.' : '') . substr $q, $i + 1, $len;
            $i += $len + 1;
        }
        my ($qtype) = unpack 'n', substr $q, $i + 1, 2;
        my $question = substr $q, 12, $i + 5 - 12;
        print $log "$name $qtype\n";
        my $found = $name eq 'sentinel.test' && $qtype == 1;
        my $reply = pack('n n n n n n', $id, $found ? 0x8180 : 0x8183, 1,
                         $found ? 1 : 0, 0, 0) . $question;
        $reply .= pack('n n n N n C4', 0xc00c, 1, 1, 0, 4, 127, 0, 0, 1)
            if $found;
        $dns->send($reply);
    }
}
$t->{pids}{dns} = $pid;

$t->start_nginx(http => "resolver 127.0.0.1:$dport ipv6=off;\n"
                        . "    whatsapp_redis_sentinel sentinel.test:$sport;\n"
                        . '    whatsapp_redis_master wa;');
my $asked = sub { my @l = grep { /^sentinel.test 1$/ } split /\n/,
                  slurp("$d/dns.log"); scalar @l };
cmp_ok $asked->(), '>=', 1, 'the sentinel\'s name resolved';
like $t->error_log, qr/sentinel sentinel.test:$sport names 127.0.0.1:$port/,
     'and the primary found through it';
is $t->post(messages_body(messages => [ text_message('wamid.N1', 'x') ]))
    ->{status}, 200, 'answered 200';

# the link breaks: the name is looked up again before the sentinel is
# asked, once its time to live is over (nginx keeps an answer that second)
select undef, undef, undef, 1.2;
my $before = $asked->();
$t->redis('CLIENT', 'KILL', 'TYPE', 'normal');
ok $t->wait_for(sub { $asked->() > $before }, 10),
   'resolved again on the reconnect';
ok $t->wait_for(sub { $t->post(messages_body(messages => [
       text_message('wamid.N2', 'y') ]))->{status} == 200 }, 10),
   'and 200 again';
is $t->xlen('wa:messages'), 2, 'both events appended';

done_testing;

sub slurp {
    open my $fh, '<', $_[0] or return '';
    local $/;
    return <$fh>;
}
